import { verify } from "node:crypto";
import { ed25519PublicKey } from "./ed25519.js";

/**
 * The runner's signed statement about one run (see RunReceipt in the proto). v2 adds the uid the
 * skill ran as (null: the runner's own, shared-uid) and the approval the gateway sent with the run;
 * v3 adds the timeout the runner enforced.
 */
export interface ReceiptPayload {
  v: 1 | 2 | 3 | 4;
  requestId: string;
  codeSha256: string;
  secretNames: string[];
  network: string[];
  termination: string;
  exitCode: number;
  durationMs: number;
  outputSha256: string;
  acceptedAt: number;
  finishedAt: number;
  uid?: number | null;
  approval?: { decidedBy: string; channel: string; decidedAtMs: number };
  /** v3: the timeout the runner enforced. */
  timeoutSeconds?: number;
  /** v4: each granted secret's binding as the runner held it, and the digest of them (bindings.ts). */
  bindings?: Array<{ name: string; mode: string; hosts: string[]; places: string[] }>;
  bindingsSha256?: string;
  /** v4: placeholders the skill sent where their binding does not allow (each refused). */
  violations?: Array<{ secret: string; host: string; where: string }>;
  /** v4: secrets whose value the runner's proxy put into a request. */
  secretsUsed?: string[];
}

/** Verifies an Ed25519 signature by a raw 32-byte public key given in hex. */
export function verifyReceipt(payloadJson: string, signatureB64: string, publicKeyHex: string): boolean {
  try {
    return verify(null, Buffer.from(payloadJson, "utf8"), ed25519PublicKey(publicKeyHex), Buffer.from(signatureB64, "base64"));
  } catch {
    return false;
  }
}

interface ChainEntry {
  seq: number;
  at?: number;
  type: string;
  requestId?: string;
  data: Record<string, unknown>;
}

/** What a chain's `request_received` entry says was asked for and shown to the approver. */
interface RequestedRun {
  codeSha256: unknown;
  secretNames: string[];
  network: string[];
  timeoutSeconds: unknown;
  skillId: unknown;
  agent: unknown;
}

/** A chain's `grant_created` entry, and its revocation time if one followed. */
interface GrantEntry {
  at: number;
  data: Record<string, unknown>;
  revokedAt?: number;
}

const sameSet = (a: unknown, b: readonly string[]) =>
  Array.isArray(a) && a.length === b.length && [...a].map(String).sort().join("\n") === [...b].sort().join("\n");

/** One receipt's signed values, for printing beside the entry they vouch for. */
export interface ReceiptSummary {
  seq: number;
  requestId: string;
  secretNames: string[];
  network: string[];
  uid: number | null | undefined;
  termination: string;
  exitCode: number;
  approval?: { decidedBy: string; channel: string; decidedAtMs: number } | undefined;
  /** v4: each secret's binding as the runner held it, and placeholders it refused. */
  bindings?: ReceiptPayload["bindings"];
  violations?: ReceiptPayload["violations"];
}

/**
 * Checks the runner receipts recorded in an audit chain: every run outcome (an entry with an exit
 * code) must carry a receipt signed by the runner's key, and everything the receipt signs must
 * match the chain: the request (code hash, secret names, hosts, timeout from the request's first
 * entry), the run outcome entry (exit code, termination, output digest, and a uid exactly when the
 * entry says per-run uids), and the decision (who, through which channel; for a grant, a
 * `grant_created` entry for this agent, skill id, code, secrets, hosts and timeout, unrevoked and
 * unexpired when it decided). A gateway that records "secrets: none" for what it then ran with a
 * secret cannot produce a matching signature.
 */
export function verifyRunReceipts(
  events: readonly ChainEntry[],
  pinnedKey?: string,
): {
  ok: boolean;
  keys: string[];
  receipts: number;
  problems: string[];
  summaries: ReceiptSummary[];
} {
  const problems: string[] = [];
  const keys = new Set<string>();
  const requested = new Map<string, RequestedRun>();
  const decisionOf = new Map<string, { by: unknown; channel: unknown; at: number }>();
  const grants = new Map<string, GrantEntry>();
  const summaries: ReceiptSummary[] = [];
  let receipts = 0;
  for (const e of events) {
    const at = e.at ?? 0;
    if (e.type === "request_received" && e.requestId) {
      const d = e.data;
      requested.set(e.requestId, {
        codeSha256: d.codeSha256,
        secretNames: Array.isArray(d.secretNames) ? d.secretNames.map(String) : [],
        network: Array.isArray(d.network) ? d.network.map(String) : [],
        timeoutSeconds: d.timeoutSeconds,
        skillId: d.skillId,
        agent: d.agent ?? null,
      });
    }
    if (e.type === "grant_created" && typeof e.data.grantId === "string") grants.set(e.data.grantId, { at, data: e.data });
    if (e.type === "grant_revoked" && typeof e.data.grantId === "string") {
      const g = grants.get(e.data.grantId);
      if (g && g.revokedAt === undefined) g.revokedAt = at;
    }
    if (e.type === "decision" && e.data.to === "approved" && e.requestId) {
      decisionOf.set(e.requestId, { by: e.data.by, channel: e.data.channel, at });
      if (e.data.channel === "grant") {
        const problem = grantProblem(String(e.data.by), grants, requested.get(e.requestId), at);
        if (problem) problems.push(`entry ${e.seq}: ${problem}`);
      }
    }
    const r = e.data.receipt as { payloadJson: string; signature: string; publicKey: string } | undefined;
    if (!r) {
      if (e.data.exitCode !== undefined) problems.push(`entry ${e.seq}: a run outcome without a runner receipt`);
      continue;
    }
    receipts++;
    keys.add(r.publicKey);
    if (pinnedKey && r.publicKey !== pinnedKey) problems.push(`entry ${e.seq}: receipt signed by another key than the pinned runner key`);
    if (!verifyReceipt(r.payloadJson, r.signature, r.publicKey)) {
      problems.push(`entry ${e.seq}: receipt signature invalid`);
      continue;
    }
    const p = JSON.parse(r.payloadJson) as ReceiptPayload;
    summaries.push({
      seq: e.seq,
      requestId: p.requestId,
      secretNames: p.secretNames,
      network: p.network,
      uid: p.uid,
      termination: p.termination,
      exitCode: p.exitCode,
      approval: p.approval,
      ...(p.bindings && { bindings: p.bindings }),
      ...(p.violations && { violations: p.violations }),
    });
    const differs: string[] = [];
    const req = p.requestId === e.requestId ? requested.get(p.requestId) : undefined;
    if (p.requestId !== e.requestId) differs.push(`request id (receipt ${p.requestId})`);
    else if (!req) differs.push("request (no request_received entry for it)");
    if (req) {
      if (p.codeSha256 !== req.codeSha256) differs.push(`code (receipt ${p.codeSha256})`);
      if (!sameSet(p.secretNames, req.secretNames)) {
        differs.push(`secrets (receipt ${p.secretNames.join(",") || "none"}, request ${req.secretNames.join(",") || "none"})`);
      }
      if (!sameSet(p.network, req.network)) {
        differs.push(`hosts (receipt ${p.network.join(",") || "none"}, request ${req.network.join(",") || "none"})`);
      }
      if (p.timeoutSeconds !== undefined && p.timeoutSeconds !== req.timeoutSeconds) {
        differs.push(`timeout (receipt ${p.timeoutSeconds} s, request ${String(req.timeoutSeconds)} s)`);
      }
    }
    if (p.exitCode !== e.data.exitCode) differs.push(`exit code (receipt ${p.exitCode})`);
    if (p.outputSha256 !== e.data.outputSha256) differs.push("output digest");
    const reason = p.termination === "cancelled" ? "signaled" : p.termination;
    if (e.data.reason !== undefined && reason !== e.data.reason)
      differs.push(`termination (receipt ${p.termination}, recorded ${String(e.data.reason)})`);
    if (p.v >= 2 && e.data.isolation !== undefined) {
      const perRunUid = e.data.isolation === "per-run-uid";
      if (perRunUid !== (typeof p.uid === "number")) {
        differs.push(
          `uid (receipt ${p.uid === null || p.uid === undefined ? "the runner's own" : p.uid}, recorded isolation ` +
            `${String(e.data.isolation)})`,
        );
      }
    }
    if (differs.length > 0) problems.push(`entry ${e.seq}: receipt does not match the recorded run: ${differs.join("; ")}`);
    const decision = decisionOf.get(p.requestId);
    if (p.approval && (!decision || decision.by !== p.approval.decidedBy || decision.channel !== p.approval.channel)) {
      problems.push(
        `entry ${e.seq}: the approval the runner was given (${p.approval.decidedBy} via ${p.approval.channel}) differs from the ` +
          `recorded decision`,
      );
    }
  }
  if (keys.size > 1) problems.push(`receipts are signed by ${keys.size} different keys`);
  return { ok: problems.length === 0, keys: [...keys], receipts, problems, summaries };
}

/** Why a grant decision is not backed by the chain's grant entries, or undefined if it is. */
function grantProblem(by: string, grants: ReadonlyMap<string, GrantEntry>, req: RequestedRun | undefined, at: number): string | undefined {
  const id = by.startsWith("grant:") ? by.slice("grant:".length) : "";
  const g = grants.get(id);
  if (!g) return `approved by ${by}, but no grant_created entry precedes it`;
  if (g.revokedAt !== undefined && g.revokedAt <= at) return `approved by ${by} after that grant was revoked`;
  if (typeof g.data.expiresAt === "number" && g.data.expiresAt <= at) return `approved by ${by} after that grant expired`;
  if (!req) return undefined; // reported with the receipt
  const d = g.data;
  const same =
    d.codeSha256 === req.codeSha256 &&
    d.skillId === req.skillId &&
    (d.agent ?? null) === req.agent &&
    d.timeoutSeconds === req.timeoutSeconds &&
    sameSet(d.secretNames, req.secretNames) &&
    sameSet(d.network, req.network);
  return same ? undefined : `approved by ${by}, which does not cover this request's agent, skill, code, secrets, hosts or timeout`;
}
