import { createHash } from "node:crypto";

/**
 * One entry of the gateway's append-only audit log. `hash` covers every other field, including
 * `prev` (the previous entry's hash), so editing, deleting or reordering any entry breaks the chain
 * from there on. No entry ever holds a secret value: names, hashes, ids and decisions only.
 */
export interface AuditEvent {
  seq: number;
  at: number;
  type: string;
  requestId?: string;
  data: Record<string, unknown>;
  prev: string;
  hash: string;
}

export const GENESIS = "0".repeat(64);

/** JSON with object keys sorted, so the same event always hashes the same. */
export function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(",")}]`;
  if (value && typeof value === "object") {
    const entries = Object.entries(value as Record<string, unknown>).filter(([, v]) => v !== undefined).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonicalJson(v)}`).join(",")}}`;
  }
  return JSON.stringify(value);
}

export function auditHash(e: Omit<AuditEvent, "hash">): string {
  return createHash("sha256").update(canonicalJson({ seq: e.seq, at: e.at, type: e.type, requestId: e.requestId, data: e.data, prev: e.prev })).digest("hex");
}

export interface ChainVerdict {
  ok: boolean;
  head: string;
  count: number;
  problems: string[];
}

/** Checks a chain from its first entry: contiguous sequence numbers, links, and every hash. */
export function verifyAuditChain(events: readonly AuditEvent[], startPrev = GENESIS, startSeq = 1): ChainVerdict {
  const problems: string[] = [];
  let prev = startPrev;
  let expectedSeq = startSeq;
  for (const e of events) {
    if (e.seq !== expectedSeq) problems.push(`entry ${e.seq}: expected sequence number ${expectedSeq} (an entry is missing or out of order)`);
    if (e.prev !== prev) problems.push(`entry ${e.seq}: does not link to the entry before it`);
    if (auditHash(e) !== e.hash) problems.push(`entry ${e.seq}: content does not match its hash (edited)`);
    prev = e.hash;
    expectedSeq = e.seq + 1;
  }
  return { ok: problems.length === 0, head: prev, count: events.length, problems };
}
