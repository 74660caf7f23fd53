// The records the store keeps and the shapes of its events. Never a secret value: names, hashes, redacted output.

export type RequestStatus = "pending" | "approved" | "executing" | "completed" | "failed" | "denied" | "expired" | "interrupted";

export const FINAL_STATUSES: ReadonlySet<RequestStatus> = new Set(["completed", "failed", "denied", "expired", "interrupted"]);

/** A secret as the runner's binding says it may be used (never its value). */
export interface SecretUse {
  name: string;
  mode: string;
  hosts: string[];
  places: string[];
}

export interface RunResult {
  success: boolean;
  stdout: string;
  stderr: string;
  exitCode: number;
  /** Milliseconds. */
  duration: number;
  /** "exited" | "timeout" | "output_limit" | "signaled" | "spawn_failed" | "memory" | "disk" */
  reason: string;
  truncated: boolean;
  redacted: boolean;
  policy: {
    denoArgs: string[];
    envNames: string[];
    allowedHosts: string[];
    timeoutSeconds: number;
    denoVersion: string;
    isolation: string;
    egress: string;
    egressPrivateAllowed: string[];
    /** Each granted secret's binding as the runner held it (mode "placeholder" or "env"). Absent in older results. */
    secrets?: SecretUse[];
    /** Placeholders the skill sent where their binding does not allow (each refused by the runner's proxy). */
    violations?: Array<{ secret: string; host: string; where: string }>;
    /** Secrets whose value the runner's proxy put into a request. */
    secretsUsed?: string[];
  };
  /** The runner's signed statement of this run (absent only for results the runner did not make). */
  receipt?: { payloadJson: string; signature: string; publicKey: string };
}

/** Judges a new request against every pending one: its pending twin, "full", or undefined (admit). */
export type Admission = (pending: readonly ExecRequest[]) => { twin: ExecRequest } | "full" | undefined;

/**
 * A decision taken in the same transaction as a request's creation (an active grant covers it):
 * the request is stored already decided, so no consumer ever sees it pending. Undefined: pending.
 */
export type InstantDecision = (
  request: ExecRequest,
) => Pick<ExecRequest, "status" | "decidedAt" | "decidedBy" | "decisionChannel"> | undefined;

/**
 * One committed, durable state change: the request as it is now, what it was before (absent for a
 * new request) and the audit entry that recorded it (absent for changes that write none).
 */
export interface RequestChange {
  request: ExecRequest;
  previous?: ExecRequest;
  seq?: number;
}

/** One agent request. Never holds a secret value: only names, hashes and redacted output. */
export interface ExecRequest {
  id: string;
  status: RequestStatus;
  skillId: string;
  /** The requesting agent's name, when agents identify themselves (AGENT_TOKENS); undefined otherwise. */
  agent?: string;
  skillName?: string;
  description?: string;
  source: string;
  codeSha256: string;
  codeSize: number;
  secretNames: string[];
  /** Each granted secret's binding as the runner reported it at intake (what the approver is shown). */
  secretBindings?: SecretUse[];
  network: string[];
  args: Array<{ name: string; value: string }>;
  timeoutSeconds: number;
  createdAt: number;
  expiresAt: number;
  decidedAt?: number;
  decidedBy?: string;
  decisionChannel?: string;
  executedAt?: number;
  completedAt?: number;
  result?: RunResult;
  /** When stdout/stderr were dropped by the retention sweep. */
  outputPurgedAt?: number;
  error?: string;
}
