import type { z } from "zod";
import type { ExecRequest } from "../store/store.js";
import type { StatusDocument } from "./api-schemas.js";

/** The status document: upstream's fields and names, plus what upstream lacked. */
export function statusView(r: ExecRequest): z.input<typeof StatusDocument> {
  return {
    request_id: r.id,
    status: r.status,
    skill_id: r.skillId,
    ...(r.agent !== undefined && { agent: r.agent }),
    code_hash: r.codeSha256,
    code_size: r.codeSize,
    secrets: r.secretNames,
    network: r.network,
    timeout_seconds: r.timeoutSeconds,
    created_at: r.createdAt,
    expires_at: r.expiresAt,
    ...(r.status === "approved" || r.executedAt !== undefined ? { approved_at: r.decidedAt } : {}),
    ...(r.decidedAt !== undefined && { decided_at: r.decidedAt, decided_by: r.decidedBy }),
    ...(r.executedAt !== undefined && { executed_at: r.executedAt }),
    ...(r.completedAt !== undefined && { completed_at: r.completedAt }),
    ...(r.result !== undefined && {
      result: {
        success: r.result.success,
        stdout: r.result.stdout,
        stderr: r.result.stderr,
        exitCode: r.result.exitCode,
        duration: r.result.duration,
        reason: r.result.reason,
        truncated: r.result.truncated,
        redacted: r.result.redacted,
        policy: {
          isolation: r.result.policy.isolation,
          egress: r.result.policy.egress,
          egress_private_allowed: r.result.policy.egressPrivateAllowed,
          allowed_hosts: r.result.policy.allowedHosts,
          env_names: r.result.policy.envNames,
          timeout_seconds: r.result.policy.timeoutSeconds,
          deno_version: r.result.policy.denoVersion,
          deno_args: r.result.policy.denoArgs,
          secrets: (r.result.policy.secrets ?? []).map((b) => ({
            name: b.name,
            mode: b.mode,
            hosts: b.hosts,
            places: b.places,
            skill_sees: b.mode === "placeholder" ? ("a placeholder" as const) : ("the real value" as const),
          })),
          violations: r.result.policy.violations ?? [],
          secrets_used: r.result.policy.secretsUsed ?? [],
        },
      },
    }),
    ...(r.outputPurgedAt !== undefined && { output_purged_at: r.outputPurgedAt }),
    ...(r.error !== undefined && { error: r.error }),
  };
}
