import { createHash } from "node:crypto";
import { canonicalJson, legacyCanonicalJson } from "./canonical-json.js";

/**
 * One entry of the gateway's append-only audit log. `hash` covers every other field, including
 * `prev` (the previous entry's hash), so editing, deleting or reordering any entry breaks the chain
 * from there on. No entry ever holds a secret value: names, hashes, ids and decisions only.
 */
export interface AuditEvent {
  /** The entry's format: 2 (hashed as RFC 8785). Absent: format 1, written before formats had a number. */
  v?: number;
  seq: number;
  at: number;
  type: string;
  requestId?: string;
  data: Record<string, unknown>;
  prev: string;
  hash: string;
}

export const GENESIS = "0".repeat(64);

/** The format new entries are written in: the hash covers `v` and is computed over RFC 8785 JSON. */
export const AUDIT_FORMAT = 2;

/**
 * An entry's hash: SHA-256 of the canonical JSON of every field but `hash`. Format 2 (`v: 2`) is
 * RFC 8785 (canonical-json.ts) and covers `v` too; an entry without `v` is format 1, hashed as it
 * was written. Throws for a format this code does not know (the verifier reports it).
 */
export function auditHash(e: Omit<AuditEvent, "hash">): string {
  const fields = { seq: e.seq, at: e.at, type: e.type, requestId: e.requestId, data: e.data, prev: e.prev };
  if (e.v === undefined) return createHash("sha256").update(legacyCanonicalJson(fields)).digest("hex");
  if (e.v === 2)
    return createHash("sha256")
      .update(canonicalJson({ v: e.v, ...fields }))
      .digest("hex");
  throw new Error(`unknown audit entry format ${JSON.stringify(e.v)}`);
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
    if (e.seq !== expectedSeq)
      problems.push(`entry ${e.seq}: expected sequence number ${expectedSeq} (an entry is missing or out of order)`);
    if (e.prev !== prev) problems.push(`entry ${e.seq}: does not link to the entry before it`);
    let hash: string | undefined;
    try {
      hash = auditHash(e);
    } catch (err) {
      problems.push(`entry ${e.seq}: ${(err as Error).message}`);
    }
    if (hash !== undefined && hash !== e.hash) problems.push(`entry ${e.seq}: content does not match its hash (edited)`);
    prev = e.hash;
    expectedSeq = e.seq + 1;
  }
  return { ok: problems.length === 0, head: prev, count: events.length, problems };
}
