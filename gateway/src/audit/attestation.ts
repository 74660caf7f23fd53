import { ConnectError, Code } from "@connectrpc/connect";
import { NONCE_PATTERN } from "@oauth3/shared";
import type { SigningKey } from "@oauth3/shared/signing-key";
import type { GatewayConfig } from "../config.js";
import { GatewayError } from "../errors.js";
import type { RunnerClient } from "../runs/runner-client.js";
import type { RequestStore } from "../store/store.js";

export const GATEWAY_VERSION = "0.1.0";

/**
 * The gateway's effective policy as the attestation binds it: who can approve, how long approvals
 * and grants live, what agents may ask for. Ids and limits only (never the bot token).
 */
export function gatewayPolicy(config: GatewayConfig): Record<string, unknown> {
  const tg = config.telegram;
  return {
    gatewayVersion: GATEWAY_VERSION,
    telegram: tg
      ? { chatId: tg.chatId ?? null, approverIds: [...tg.approverIds].sort((a, b) => a - b), mode: tg.webhook ? "webhook" : "polling" }
      : null,
    approvalTtlSeconds: config.approvalTtlMs / 1000,
    grantTtlSeconds: config.grantTtlMs / 1000,
    maxTimeoutSeconds: config.maxTimeoutSeconds,
    maxPendingRequests: config.maxPending,
    submissionsPerMinute: config.submissionsPerMinute,
    skillFetchAllowPrivate: [...config.fetch.allowPrivate].sort(),
    agents: [...config.agentTokens.keys()].sort(),
    outputRetentionHours: config.outputRetentionMs / 3_600_000,
  };
}

export interface AttestationDeps {
  store: RequestStore;
  runner: RunnerClient;
  gatewayKey: SigningKey;
  policy: Record<string, unknown>;
}

/**
 * GET /attestation?nonce=<hex>: asks the runner (which alone holds the dstack socket) for evidence
 * binding the nonce, the current audit head, both public keys and the policy digest. The gateway
 * countersigns the statement with its own key, proving it holds the key the statement names.
 */
export async function attestation(deps: AttestationDeps, nonce: string | undefined): Promise<Record<string, unknown>> {
  if (!nonce || !NONCE_PATTERN.test(nonce)) {
    throw new GatewayError("invalid", "invalid_nonce", "nonce must be 16 to 32 random bytes in lowercase hex (32-64 characters)");
  }
  const head = deps.store.auditHead();
  let r: Awaited<ReturnType<AttestationDeps["runner"]["attest"]>>;
  try {
    r = await deps.runner.attest(
      {
        nonce,
        auditHeadSeq: BigInt(head.seq),
        auditHeadHash: head.hash,
        gatewayPublicKey: deps.gatewayKey.publicKeyHex,
        gatewayPolicyJson: JSON.stringify(deps.policy),
      },
      { timeoutMs: 30_000 },
    );
  } catch (err) {
    const e = ConnectError.from(err);
    if (e.code === Code.Unavailable && /dstack/.test(e.rawMessage))
      throw new GatewayError("upstream_failed", "attestation_failed", e.rawMessage);
    throw new GatewayError("unavailable", "runner_unavailable", `the vault-runner is not reachable (${Code[e.code]})`);
  }
  const gatewaySignature = deps.gatewayKey.sign(JSON.parse(r.statementJson) as object);
  return {
    tee: r.tee,
    ...(r.tee ? {} : { no_tee_reason: r.noTeeReason }),
    statement: JSON.parse(r.statementJson) as unknown,
    policy: JSON.parse(r.policyJson) as unknown,
    report_data: r.reportData,
    ...(r.tee && {
      quote: r.quote,
      event_log: r.eventLog,
      dstack_info: JSON.parse(r.dstackInfoJson || "{}") as unknown,
    }),
    gateway_signature: gatewaySignature.signature.toString("base64"),
  };
}
