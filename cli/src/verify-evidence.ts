import { createHash } from "node:crypto";
import {
  canonicalJson,
  GENESIS,
  policyDigest,
  replayRtmr3,
  reportDataFor,
  tdxReportData,
  verifyAuditChain,
  verifyReceipt,
  verifyRunReceipts,
  type AttestationStatement,
  type AuditEvent,
} from "@oauth3/shared";

/** The gateway's signed claim about its audit head, as GET /audit returns it. */
export interface Checkpoint {
  payload_json: string;
  signature: string;
  public_key: string;
}

/**
 * Checks attestation evidence offline against the caller's nonce and the downloaded audit chain:
 * everything that can be checked without Intel's collateral (the quote's signature is not).
 */
export function verifyEvidence(
  evidence: Record<string, unknown>,
  nonce: string,
  events: AuditEvent[],
  checkpoint: Checkpoint | undefined,
): { ok: boolean; checks: { check: string; ok: boolean; detail?: string }[] } {
  const checks: { check: string; ok: boolean; detail?: string }[] = [];
  const add = (check: string, ok: boolean, detail?: string) => checks.push({ check, ok, ...(detail !== undefined && { detail }) });
  const st = evidence.statement as AttestationStatement | undefined;
  if (!st || typeof st !== "object" || typeof evidence.report_data !== "string") {
    add("evidence has a statement and report_data", false);
    return { ok: false, checks };
  }
  add("statement carries our nonce", st.nonce === nonce, st.nonce === nonce ? undefined : `got ${String(st.nonce)}`);
  const policyOk = policyDigest(evidence.policy) === st.policySha256;
  add("policy digest matches the policy shown", policyOk, `sha256 ${st.policySha256}`);
  const expected = reportDataFor(st);
  add("report_data = SHA-512(statement)", expected === evidence.report_data);
  if (evidence.tee === true) {
    const q = tdxReportData(String(evidence.quote ?? ""));
    add(
      "the quote's report_data is that value",
      "reportData" in q && q.reportData === expected,
      "error" in q ? q.error : `TDX quote v${q.version}`,
    );
    const info = (evidence.dstack_info ?? {}) as Record<string, unknown>;
    if ("rtmr3" in q) {
      // RTMR3 carries the app's identity: the event log must replay to it, and its events must
      // name the same app, compose hash and instance as Info.
      const replay = replayRtmr3(String(evidence.event_log ?? ""), q.rtmr3);
      add(
        "RTMR3 replayed from the event log matches the quote",
        replay.ok,
        replay.ok ? `${q.rtmr3.slice(0, 16)}…` : replay.problems.join("; "),
      );
      for (const [event, field] of [
        ["compose-hash", "compose_hash"],
        ["app-id", "app_id"],
        ["instance-id", "instance_id"],
      ] as const) {
        const inLog = replay.payloads.get(event);
        if (event === "instance-id" && inLog === undefined) continue; // not emitted by every dstack OS
        add(
          `RTMR3 ${event} event = Info ${field}`,
          inLog !== undefined && inLog === String(info[field] ?? "").toLowerCase(),
          `${String(info[field])}`,
        );
      }
    }
    if (info.app_compose !== undefined) {
      const h = createHash("sha256").update(String(info.app_compose)).digest("hex");
      add("compose_hash = sha256(app_compose)", h === info.compose_hash, `app ${String(info.app_id)} compose ${String(info.compose_hash)}`);
    }
  }
  add(
    "gateway countersigned the statement with the key it names",
    typeof evidence.gateway_signature === "string" && verifyReceipt(canonicalJson(st), evidence.gateway_signature, st.gatewayPublicKey),
  );
  const chain = verifyAuditChain(events);
  add("audit chain links and hashes", chain.ok, chain.ok ? `${chain.count} entries` : chain.problems.join("; "));
  const at = st.auditHead.seq === 0 ? GENESIS : events.find((e) => e.seq === st.auditHead.seq)?.hash;
  add("attested audit head is in the chain", at === st.auditHead.hash, `entry ${st.auditHead.seq} ${st.auditHead.hash.slice(0, 16)}…`);
  const receipts = verifyRunReceipts(events, st.runnerPublicKey);
  add(
    "every run carries a receipt signed by the attested runner key, matching its request, outcome and decision",
    receipts.ok,
    receipts.ok
      ? `${receipts.receipts} receipts, key ${st.runnerPublicKey.slice(0, 16)}… (${st.runnerKeySource})`
      : receipts.problems.join("; "),
  );
  // The checkpoint must name the head the chain ends at, signed by the attested gateway key.
  const signedHead = checkpoint ? (JSON.parse(checkpoint.payload_json) as { seq?: number; hash?: string }) : undefined;
  const last = events.at(-1);
  add(
    "checkpoint signed by the attested gateway key, naming the chain's head",
    checkpoint !== undefined &&
      checkpoint.public_key === st.gatewayPublicKey &&
      verifyReceipt(checkpoint.payload_json, checkpoint.signature, checkpoint.public_key) &&
      signedHead?.seq === (last?.seq ?? 0) &&
      signedHead?.hash === (last?.hash ?? GENESIS),
    checkpoint ? undefined : "no checkpoint in the answer",
  );
  return { ok: checks.every((c) => c.ok), checks };
}
