import { createHash } from "node:crypto";
import { canonicalJson } from "./canonical-json.js";

/**
 * What a dstack TDX quote's 64-byte report_data binds for oauth3-proxy. The runner computes it (it
 * alone talks to the dstack guest agent); an operator recomputes it offline from the statement and
 * compares it with the report_data inside the quote.
 *
 *   report_data = SHA-512( "oauth3-proxy/attestation/v1\n" || canonicalJson(statement) )
 *
 * `policySha256` is SHA-256 over canonicalJson(policy): the whole effective policy (Deno version and
 * flags, limits, isolation, egress, approver ids) is returned beside the statement so it can be read
 * and re-digested.
 */
export interface AttestationStatement {
  v: 1;
  nonce: string;
  auditHead: { seq: number; hash: string };
  gatewayPublicKey: string;
  runnerPublicKey: string;
  runnerKeySource: "dstack" | "local";
  policySha256: string;
}

export const ATTESTATION_DOMAIN = "oauth3-proxy/attestation/v1\n";
export const NONCE_PATTERN = /^(?:[0-9a-f]{2}){16,32}$/;
export const HEX32_PATTERN = /^[0-9a-f]{64}$/;

export function policyDigest(policy: unknown): string {
  return createHash("sha256").update(canonicalJson(policy)).digest("hex");
}

export function reportDataFor(statement: AttestationStatement): string {
  return createHash("sha512").update(ATTESTATION_DOMAIN).update(canonicalJson(statement)).digest("hex");
}

/**
 * Fields of a TDX quote (Intel DCAP quote format) that the binding needs: v4 quotes have a 48-byte
 * header followed by the 584-byte TD report; v5 quotes put a 6-byte body descriptor (type u16, size
 * u32) after the header. In the TD report, RTMR3 is at 472 and report_data (its last 64 bytes) at
 * 520. Only the layout is read here; the quote's signature must be checked by a DCAP verifier.
 */
export function tdxReportData(quoteHex: string): { reportData: string; rtmr3: string; version: number } | { error: string } {
  if (!/^(?:[0-9a-f]{2})+$/i.test(quoteHex)) return { error: "quote is not hex" };
  const quote = Buffer.from(quoteHex, "hex");
  if (quote.length < 48) return { error: "quote shorter than its header" };
  const version = quote.readUInt16LE(0);
  const teeType = quote.readUInt32LE(4);
  if (teeType !== 0x81) return { error: `quote is not a TDX quote (tee type 0x${teeType.toString(16)})` };
  const body = version === 4 ? 48 : version === 5 ? 54 : -1;
  if (body < 0) return { error: `unsupported quote version ${version}` };
  if (quote.length < body + 584) return { error: "quote shorter than its TD report" };
  return {
    reportData: quote.subarray(body + 520, body + 584).toString("hex"),
    rtmr3: quote.subarray(body + 472, body + 520).toString("hex"),
    version,
  };
}

/** dstack's runtime event type (RTMR3 events: app-id, compose-hash, instance-id, ...). */
const DSTACK_RUNTIME_EVENT_TYPE = 0x08000001;

interface EventLogEntry {
  imr: number;
  event_type: number;
  digest: string;
  event: string;
  event_payload: string;
  version?: number;
}

/**
 * Replays RTMR3 from dstack's event log and checks each runtime event's digest is its content
 * (v1: SHA-384(type LE ‖ ":" ‖ name ‖ ":" ‖ payload); v2: SHA-384 of the canonical JSON
 * {event, event_type, payload hex, version: 2}, as dstack's cc-eventlog computes them). Returns the
 * events' payloads by name (hex) so they can be compared with what Info reports.
 */
export function replayRtmr3(eventLogJson: string, rtmr3Hex: string): { ok: boolean; problems: string[]; payloads: Map<string, string> } {
  const problems: string[] = [];
  const payloads = new Map<string, string>();
  let log: EventLogEntry[];
  try {
    log = JSON.parse(eventLogJson) as EventLogEntry[];
    if (!Array.isArray(log)) throw new Error("not an array");
  } catch (err) {
    return { ok: false, problems: [`event log is not a JSON array (${(err as Error).message})`], payloads };
  }
  let mr = Buffer.alloc(48);
  for (const e of log.filter((x) => x.imr === 3)) {
    const digest = Buffer.from(String(e.digest), "hex");
    if (e.event_type === DSTACK_RUNTIME_EVENT_TYPE) {
      const payload = Buffer.from(String(e.event_payload ?? ""), "hex");
      const name = Buffer.from(String(e.event), "utf8");
      const typeLe = Buffer.alloc(4);
      typeLe.writeUInt32LE(DSTACK_RUNTIME_EVENT_TYPE, 0);
      const v1 = createHash("sha384")
        .update(Buffer.concat([typeLe, Buffer.from(":"), name, Buffer.from(":"), payload]))
        .digest();
      const v2 = createHash("sha384")
        .update(
          canonicalJson({ event: String(e.event), event_type: DSTACK_RUNTIME_EVENT_TYPE, payload: payload.toString("hex"), version: 2 }),
        )
        .digest();
      const expected = e.version === 2 ? [v2] : e.version === 1 ? [v1] : [v1, v2];
      if (!expected.some((d) => d.equals(digest))) problems.push(`event ${JSON.stringify(e.event)}: digest is not its content`);
      else payloads.set(String(e.event), payload.toString("hex"));
    }
    const padded = digest.length < 48 ? Buffer.concat([digest, Buffer.alloc(48 - digest.length)]) : digest;
    mr = createHash("sha384")
      .update(Buffer.concat([mr, padded]))
      .digest();
  }
  if (mr.toString("hex") !== rtmr3Hex.toLowerCase()) problems.push("RTMR3 replayed from the event log differs from the quote's RTMR3");
  return { ok: problems.length === 0, problems, payloads };
}
