import { createHash } from "node:crypto";
import { EventEmitter } from "node:events";
import { open, type Database, type RootDatabase } from "lmdb";
import { AUDIT_FORMAT, auditHash, GENESIS, outputDigest, type AuditEvent } from "@oauth3/shared";
import { prepareDbLocation, resolveDbLocation, type DbLocation } from "./db-location.js";

/** What a state change records in the audit chain (in the same transaction: no event, no change). */
export interface AuditNote {
  type: string;
  data?: Record<string, unknown>;
}

export type RequestStatus = "pending" | "approved" | "executing" | "completed" | "failed" | "denied" | "expired" | "interrupted";

export const FINAL_STATUSES: ReadonlySet<RequestStatus> = new Set(["completed", "failed", "denied", "expired", "interrupted"]);

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

/**
 * Request state in LMDB. Every write is awaited until it is on disk (lmdb-js commits before it
 * flushes, so `flushed` is awaited too) before the caller acknowledges anything. State changes go
 * through `transition`, an atomic compare-and-set: of two concurrent approvals, exactly one wins.
 * LMDB serialises writers across processes too, so a second gateway on the same file cannot break it.
 */
/** The audit entry for a status change: who decided how, and for finished runs the outcome's digest. */
function statusNote(current: ExecRequest, next: ExecRequest): AuditNote {
  const data: Record<string, unknown> = { from: current.status, to: next.status };
  if (next.decidedBy !== current.decidedBy) Object.assign(data, { by: next.decidedBy, channel: next.decisionChannel });
  if (next.result && !current.result) {
    Object.assign(data, {
      exitCode: next.result.exitCode,
      reason: next.result.reason,
      durationMs: next.result.duration,
      outputSha256: outputDigest(next.result.stdout, next.result.stderr),
      isolation: next.result.policy.isolation,
      egress: next.result.policy.egress,
      ...(next.result.receipt && { receipt: next.result.receipt }),
    });
  }
  if (next.error !== undefined && next.error !== current.error) data.error = next.error;
  return {
    type: next.status === "approved" || next.status === "denied" ? "decision" : next.status === "executing" ? "run_started" : "status",
    data,
  };
}

export class RequestStore {
  /** The one event path: every committed, durable change of a request, and failed audit writes. */
  private readonly events = new EventEmitter().setMaxListeners(0);

  private readonly audit: Database<AuditEvent, number>;

  private constructor(
    private readonly root: RootDatabase,
    private readonly requests: Database<ExecRequest, string>,
    private readonly code: Database<Buffer, string>,
  ) {
    this.audit = root.openDB<AuditEvent, number>({ name: "audit", keyEncoding: "uint32" });
  }

  /**
   * Opens DB_PATH as db-location.ts decides (a directory or one LMDB file), private to the gateway's
   * user. `openLmdb` is lmdb-js's `open` (tests pass one whose writes can be made to fail, as a full
   * disk would).
   */
  static open(path: string | DbLocation, openLmdb: typeof open = open): RequestStore {
    const loc = typeof path === "string" ? resolveDbLocation(path) : path;
    prepareDbLocation(loc);
    const root = openLmdb({ path: loc.lmdbPath, noSubdir: loc.noSubdir, compression: false });
    return new RequestStore(
      root,
      root.openDB<ExecRequest, string>({ name: "requests" }),
      root.openDB<Buffer, string>({ name: "code", encoding: "binary" }),
    );
  }

  async create(request: ExecRequest, code: Buffer): Promise<void> {
    const outcome = await this.admit(request, code);
    if (outcome !== "created") throw new Error(`request ${request.id} was not created`);
  }

  /**
   * Creates a request if `admission`, shown every pending request inside the same write
   * transaction, lets it: check and write are one atomic step, so a cap or an identical-request
   * merge cannot be raced by concurrent submissions. Returns "created", the pending twin to answer
   * with instead, or "full".
   */
  async admit(
    request: ExecRequest,
    code: Buffer,
    admission?: Admission,
    decide?: InstantDecision,
  ): Promise<"created" | "full" | { twin: ExecRequest }> {
    let change: RequestChange | undefined;
    const outcome = await this.audited(() =>
      this.requests.transaction(() => {
        if (this.requests.get(request.id) !== undefined) return "exists" as const;
        if (admission) {
          const pending: ExecRequest[] = [];
          for (const { value } of this.requests.getRange()) if (value.status === "pending") pending.push(value);
          const verdict = admission(pending);
          if (verdict !== undefined) return verdict;
        }
        let seq = this.appendAudit(request.id, {
          type: "request_received",
          data: {
            skillId: request.skillId,
            agent: request.agent,
            codeSha256: request.codeSha256,
            codeSize: request.codeSize,
            secretNames: request.secretNames,
            network: request.network,
            timeoutSeconds: request.timeoutSeconds,
            argsSha256: createHash("sha256").update(JSON.stringify(request.args)).digest("hex"),
            source: request.source.slice(0, 200),
          },
        });
        const decision = decide?.(request);
        const stored = decision ? { ...request, ...decision } : request;
        if (decision) seq = this.appendAudit(request.id, statusNote(request, stored));
        void this.code.put(request.id, code);
        void this.requests.put(request.id, stored);
        change = { request: stored, seq };
        return "created" as const;
      }),
    );
    if (outcome === "exists") throw new Error(`request ${request.id} already exists`);
    if (outcome === "created") {
      await this.root.flushed;
      this.events.emit("change", change);
    }
    return outcome;
  }

  /**
   * One durable write transaction for state other parts own (grants) together with its audit
   * entries: `write` puts into its sub-database and calls `audit` for each entry; both happen or
   * neither. Returns what `write` returned.
   */
  async writeAudited<T>(write: (audit: (requestId: string | undefined, note: AuditNote) => void) => T): Promise<T> {
    const result = await this.audited(() => this.requests.transaction(() => write((id, note) => this.appendAudit(id, note))));
    await this.root.flushed;
    return result;
  }

  /** A named sub-database in the same environment, for state other parts own (grants, Telegram). */
  subDb<V>(name: string): Database<V, string> {
    return this.root.openDB<V, string>({ name });
  }

  /** Resolves once every write so far is on disk. */
  get flushed(): Promise<boolean> {
    return this.root.flushed as unknown as Promise<boolean>;
  }

  get(id: string): ExecRequest | undefined {
    return this.requests.get(id);
  }

  getCode(id: string): Buffer | undefined {
    return this.code.get(id);
  }

  /**
   * Moves a request from one of `from` to a new state, atomically and durably. Returns the
   * updated request, or undefined if it was not in an allowed state (someone else won, or it
   * expired) or `guard` said no.
   */
  async transition(
    id: string,
    from: readonly RequestStatus[],
    patch: Partial<ExecRequest> & { status: RequestStatus },
    guard?: (current: ExecRequest) => boolean,
    note?: AuditNote,
  ): Promise<ExecRequest | undefined> {
    const change = await this.audited(() =>
      this.requests.transaction((): RequestChange | undefined => {
        const current = this.requests.get(id);
        if (!current || !from.includes(current.status)) return undefined;
        if (guard && !guard(current)) return undefined;
        const next = { ...current, ...patch };
        const seq = note || next.status !== current.status ? this.appendAudit(id, note ?? statusNote(current, next)) : undefined;
        void this.requests.put(id, next);
        return { request: next, previous: current, ...(seq !== undefined && { seq }) };
      }),
    );
    if (change) {
      await this.root.flushed;
      this.events.emit("change", change);
    }
    return change?.request;
  }

  /**
   * Calls `listener` after every committed, durable change (creation included), in commit order.
   * The one event path: cards, notifications, long-polls, streams, metrics and the dispatcher all
   * listen here. Returns the function that unsubscribes.
   */
  onChange(listener: (change: RequestChange) => void): () => void {
    this.events.on("change", listener);
    return () => this.events.off("change", listener);
  }

  /** How many change listeners are registered (tests: nothing a dropped client opened is left). */
  get changeListenerCount(): number {
    return this.events.listenerCount("change");
  }

  /** Calls `listener` when a state change is refused because its audit entry could not be written. */
  onAuditFailure(listener: (err: unknown) => void): () => void {
    this.events.on("audit_failure", listener);
    return () => this.events.off("audit_failure", listener);
  }

  /**
   * Resolves when `id` changes state, after `ms`, or when `signal` aborts (the client went away),
   * whichever comes first; nothing of the wait is left registered afterwards.
   */
  waitForChange(id: string, ms: number, signal?: AbortSignal): Promise<void> {
    return new Promise((resolve) => {
      if (signal?.aborted) return resolve();
      const timer = setTimeout(() => done(), ms);
      const unsubscribe = this.onChange((change) => {
        if (change.request.id === id) done();
      });
      const done = () => {
        clearTimeout(timer);
        unsubscribe();
        signal?.removeEventListener("abort", done);
        resolve();
      };
      signal?.addEventListener("abort", done, { once: true });
    });
  }

  /** Runs a write transaction; a failure (the audit entry could not be written) is announced. */
  private async audited<T>(write: () => Promise<T>): Promise<T> {
    try {
      return await write();
    } catch (thrown) {
      // A failed commit (disk full, I/O error) also rejects lmdb's shared commitError promise:
      // observe it here so it cannot surface as an unhandled rejection that kills the process.
      const commitError = (thrown as { commitError?: Promise<unknown> }).commitError;
      const err = commitError
        ? await commitError.then(
            () => thrown,
            (cause: unknown) => new Error(`the write was not committed: ${String(cause)}`),
          )
        : thrown;
      this.events.emit("audit_failure", err);
      throw err;
    }
  }

  /**
   * Appends to the hash chain. Runs inside the caller's write transaction: if it throws (disk or
   * map full), the whole transaction, and so the state change, does not happen.
   */
  private appendAudit(requestId: string | undefined, note: AuditNote): number {
    let head: AuditEvent | undefined;
    for (const { value } of this.audit.getRange({ reverse: true, limit: 1 })) head = value;
    const base = {
      v: AUDIT_FORMAT,
      seq: (head?.seq ?? 0) + 1,
      at: Date.now(),
      type: note.type,
      ...(requestId && { requestId }),
      data: note.data ?? {},
      prev: head?.hash ?? GENESIS,
    };
    const event: AuditEvent = { ...base, hash: auditHash(base) };
    void this.audit.put(event.seq, event);
    return event.seq;
  }

  /** The chain's last entry (seq 0 and the zero hash while it is empty). */
  auditHead(): { seq: number; hash: string } {
    for (const { value } of this.audit.getRange({ reverse: true, limit: 1 })) return { seq: value.seq, hash: value.hash };
    return { seq: 0, hash: GENESIS };
  }

  /** Audit entries with seq > after, oldest first. */
  auditPage(after: number, limit: number): AuditEvent[] {
    const out: AuditEvent[] = [];
    for (const { value } of this.audit.getRange({ start: after + 1, limit })) out.push(value);
    return out;
  }

  /** Full scan; fine at sidecar volumes. An index by status comes when volumes need it. */
  list(filter: (r: ExecRequest) => boolean): ExecRequest[] {
    const out: ExecRequest[] = [];
    for (const { value } of this.requests.getRange()) if (filter(value)) out.push(value);
    return out;
  }

  async close(): Promise<void> {
    await this.root.close();
  }
}

/**
 * lmdb-js rejects an internal promise nobody can await when a commit fails (disk full, I/O error;
 * kriszyp/lmdb-js#368). The failure also rejects the transaction its caller awaits, so the
 * request is refused there and recorded as an audit write failure; this duplicate must not kill
 * the process. Any other unhandled rejection still ends it, as Node's default would.
 */
export function exitOnUnhandledRejectionExceptLmdbCommits(name: string): void {
  process.on("unhandledRejection", (reason: unknown) => {
    if (reason instanceof Error && reason.message === "Commit failed (see commitError for details)") return;
    process.stderr.write(`${name}: unhandled rejection: ${reason instanceof Error ? (reason.stack ?? reason.message) : String(reason)}\n`);
    process.exit(1);
  });
}
