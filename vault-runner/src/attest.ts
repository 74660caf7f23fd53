import { create } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import { AttestResponseSchema, type AttestRequest, type AttestResponse } from "@oauth3/proto/runner/v1";
import {
  canonicalJson,
  GENESIS,
  HEX32_PATTERN,
  NONCE_PATTERN,
  policyDigest,
  reportDataFor,
  type AttestationStatement,
} from "@oauth3/shared";
import type { SigningKey } from "@oauth3/shared/signing-key";
import type { DstackAgent } from "./dstack.js";

const MAX_GATEWAY_POLICY_BYTES = 16 * 1024;

export interface AttesterDeps {
  signer: SigningKey;
  /** The runner's effective policy, computed by the runner (never taken from the gateway). */
  runnerPolicy: () => Record<string, unknown>;
  dstack?: DstackAgent | undefined;
}

const NO_TEE =
  "no TEE: this runner has no dstack guest agent (RUNNER_DSTACK_ENDPOINT is not set), so there is no " +
  "hardware quote. The statement below is only as trustworthy as the machine it came from.";

/**
 * Builds the attestation statement from the runner's own key and policy plus the gateway's claims
 * (checked for shape only), and asks dstack for a quote over it. One quote at a time.
 */
export function createAttester(deps: AttesterDeps): (req: AttestRequest) => Promise<AttestResponse> {
  let last: Promise<unknown> = Promise.resolve();
  return (req) => {
    const next = last.then(() => attestOnce(req, deps));
    last = next.catch(() => undefined);
    return next;
  };
}

async function attestOnce(req: AttestRequest, deps: AttesterDeps): Promise<AttestResponse> {
  const invalid = (msg: string) => new ConnectError(msg, Code.InvalidArgument);
  if (!NONCE_PATTERN.test(req.nonce)) throw invalid("nonce must be 16-32 bytes of lowercase hex");
  if (!HEX32_PATTERN.test(req.auditHeadHash)) throw invalid("audit_head_hash must be 64 lowercase hex");
  if ((req.auditHeadSeq === 0n) !== (req.auditHeadHash === GENESIS)) throw invalid("an empty chain has seq 0 and the zero hash");
  if (req.auditHeadSeq > BigInt(Number.MAX_SAFE_INTEGER)) throw invalid("audit_head_seq out of range");
  if (!HEX32_PATTERN.test(req.gatewayPublicKey)) throw invalid("gateway_public_key must be 64 lowercase hex");
  if (Buffer.byteLength(req.gatewayPolicyJson) > MAX_GATEWAY_POLICY_BYTES) throw invalid("gateway_policy_json is over 16 KiB");
  let gateway: unknown;
  try {
    gateway = JSON.parse(req.gatewayPolicyJson);
  } catch {
    throw invalid("gateway_policy_json is not JSON");
  }
  if (!gateway || typeof gateway !== "object" || Array.isArray(gateway)) throw invalid("gateway_policy_json must be an object");

  const policy = { gateway, runner: deps.runnerPolicy() };
  const statement: AttestationStatement = {
    v: 1,
    nonce: req.nonce,
    auditHead: { seq: Number(req.auditHeadSeq), hash: req.auditHeadHash },
    gatewayPublicKey: req.gatewayPublicKey,
    runnerPublicKey: deps.signer.publicKeyHex,
    runnerKeySource: deps.signer.source,
    policySha256: policyDigest(policy),
  };
  const reportData = reportDataFor(statement);
  const base = { statementJson: canonicalJson(statement), policyJson: canonicalJson(policy), reportData };
  if (!deps.dstack) return create(AttestResponseSchema, { ...base, tee: false, noTeeReason: NO_TEE });
  try {
    const [{ quote, eventLog }, info] = await Promise.all([deps.dstack.quote(reportData), deps.dstack.info()]);
    return create(AttestResponseSchema, { ...base, tee: true, quote, eventLog, dstackInfoJson: JSON.stringify(info) });
  } catch (err) {
    throw new ConnectError((err as Error).message, Code.Unavailable);
  }
}
