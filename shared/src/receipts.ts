import { createPublicKey, verify } from "node:crypto";

/**
 * The runner's signed statement about one run (see RunReceipt in the proto). v2 adds the uid the
 * skill ran as (null: the runner's own, shared-uid) and the approval the gateway sent with the run.
 */
export interface ReceiptPayload {
  v: 1 | 2;
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
}

const ED25519_SPKI_PREFIX = Buffer.from("302a300506032b6570032100", "hex");

/** Verifies an Ed25519 signature by a raw 32-byte public key given in hex. */
export function verifyReceipt(payloadJson: string, signatureB64: string, publicKeyHex: string): boolean {
  try {
    const key = createPublicKey({ key: Buffer.concat([ED25519_SPKI_PREFIX, Buffer.from(publicKeyHex, "hex")]), format: "der", type: "spki" });
    return verify(null, Buffer.from(payloadJson, "utf8"), key, Buffer.from(signatureB64, "base64"));
  } catch {
    return false;
  }
}

interface ChainEntry {
  seq: number;
  type: string;
  requestId?: string;
  data: Record<string, unknown>;
}

/**
 * Checks the runner receipts recorded in an audit chain: every run outcome (an entry with an exit
 * code) must carry a receipt signed by the runner's key, and the receipt must say the same as the
 * entry (request, code hash from the request's first entry, exit code, output digest). A gateway
 * that invents or alters a run cannot produce that signature.
 */
export function verifyRunReceipts(events: readonly ChainEntry[], pinnedKey?: string): { ok: boolean; keys: string[]; receipts: number; problems: string[] } {
  const problems: string[] = [];
  const keys = new Set<string>();
  const codeOf = new Map<string, unknown>();
  const decisionOf = new Map<string, { by: unknown; channel: unknown }>();
  let receipts = 0;
  for (const e of events) {
    if (e.type === "request_received" && e.requestId) codeOf.set(e.requestId, e.data.codeSha256);
    if (e.type === "decision" && e.data.to === "approved" && e.requestId) decisionOf.set(e.requestId, { by: e.data.by, channel: e.data.channel });
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
    if (p.requestId !== e.requestId || p.exitCode !== e.data.exitCode || p.outputSha256 !== e.data.outputSha256 || p.codeSha256 !== codeOf.get(p.requestId)) {
      problems.push(`entry ${e.seq}: receipt does not match the recorded run`);
    }
    const decision = decisionOf.get(p.requestId);
    if (p.approval && (!decision || decision.by !== p.approval.decidedBy || decision.channel !== p.approval.channel)) {
      problems.push(`entry ${e.seq}: the approval the runner was given (${p.approval.decidedBy} via ${p.approval.channel}) differs from the recorded decision`);
    }
  }
  if (keys.size > 1) problems.push(`receipts are signed by ${keys.size} different keys`);
  return { ok: problems.length === 0, keys: [...keys], receipts, problems };
}
