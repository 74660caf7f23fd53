import { createHash } from "node:crypto";
import type { Database } from "lmdb";
import { AUDIT_FORMAT, auditHash, GENESIS, outputDigest, type AuditEvent } from "@oauth3/shared";
import type { ExecRequest } from "./types.js";

/** What a state change records in the audit chain (in the same transaction: no event, no change). */
export interface AuditNote {
  type: string;
  data?: Record<string, unknown>;
}

/**
 * The audit hash chain (shared/audit-chain.ts defines an entry and its hash): entries keyed by seq in
 * the store's "audit" sub-database. `append` runs inside the caller's write transaction, so an entry
 * and the change it records are committed together or not at all.
 */
export class AuditLog {
  constructor(private readonly db: Database<AuditEvent, number>) {}

  /** Appends one entry and returns its seq. If it throws (disk or map full), the whole transaction, and so the change, does not happen. */
  append(requestId: string | undefined, note: AuditNote): number {
    const head = this.head();
    const base = {
      v: AUDIT_FORMAT,
      seq: head.seq + 1,
      at: Date.now(),
      type: note.type,
      ...(requestId && { requestId }),
      data: note.data ?? {},
      prev: head.hash,
    };
    const event: AuditEvent = { ...base, hash: auditHash(base) };
    void this.db.put(event.seq, event);
    return event.seq;
  }

  /** The chain's last entry (seq 0 and the zero hash while it is empty). */
  head(): { seq: number; hash: string } {
    for (const { value } of this.db.getRange({ reverse: true, limit: 1 })) return { seq: value.seq, hash: value.hash };
    return { seq: 0, hash: GENESIS };
  }

  /** Entries with seq > after, oldest first. */
  page(after: number, limit: number): AuditEvent[] {
    const out: AuditEvent[] = [];
    for (const { value } of this.db.getRange({ start: after + 1, limit })) out.push(value);
    return out;
  }
}

/** The entry that records a new request: what the approver is asked about, hashed where it is long. */
export function receivedNote(request: ExecRequest): AuditNote {
  return {
    type: "request_received",
    data: {
      skillId: request.skillId,
      agent: request.agent,
      codeSha256: request.codeSha256,
      codeSize: request.codeSize,
      secretNames: request.secretNames,
      ...(request.secretBindings && { secretBindings: request.secretBindings }),
      network: request.network,
      timeoutSeconds: request.timeoutSeconds,
      argsSha256: createHash("sha256").update(JSON.stringify(request.args)).digest("hex"),
      source: request.source.slice(0, 200),
    },
  };
}

/** The audit entry for a status change: who decided how, and for finished runs the outcome's digest. */
export function statusNote(current: ExecRequest, next: ExecRequest): AuditNote {
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
