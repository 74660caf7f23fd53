import { createHash } from "node:crypto";
import { canonicalJson } from "./audit-chain.js";

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
 * The report_data field of a TDX quote (Intel DCAP quote format): v4 quotes have a 48-byte header
 * followed by the 584-byte TD report, whose report_data is its last 64 bytes (offset 568); v5 quotes
 * put a 6-byte body descriptor (type u16, size u32) after the header (offset 574). Only the layout is
 * read here; the quote's signature must be checked by a DCAP verifier.
 */
export function tdxReportData(quoteHex: string): { reportData: string; version: number } | { error: string } {
  if (!/^(?:[0-9a-f]{2})+$/i.test(quoteHex)) return { error: "quote is not hex" };
  const quote = Buffer.from(quoteHex, "hex");
  if (quote.length < 48) return { error: "quote shorter than its header" };
  const version = quote.readUInt16LE(0);
  const teeType = quote.readUInt32LE(4);
  if (teeType !== 0x81) return { error: `quote is not a TDX quote (tee type 0x${teeType.toString(16)})` };
  const offset = version === 4 ? 568 : version === 5 ? 574 : -1;
  if (offset < 0) return { error: `unsupported quote version ${version}` };
  if (quote.length < offset + 64) return { error: "quote shorter than its TD report" };
  return { reportData: quote.subarray(offset, offset + 64).toString("hex"), version };
}
