import { z } from "zod";

/**
 * The agent API's response documents. The server's own builders are typed by these (so the code
 * cannot produce another shape) and /openapi.json is generated from them and from ExecuteBody.
 */
const status = z.enum(["pending", "approved", "executing", "completed", "failed", "denied", "expired", "interrupted"]);

export const AcceptedDocument = z
  .object({
    request_id: z.string(),
    status,
    message: z.string(),
    code_hash: z.string(),
    expires_at: z.number().int(),
    merged: z.literal(true).optional(),
  })
  .meta({ id: "Accepted" });

/** A secret as the vault-runner's binding says it may be used (never its value). */
const SecretUseDocument = z.object({
  name: z.string(),
  /** "placeholder": the skill sees a placeholder and the runner puts the value in toward `hosts` only; "env": the skill sees the real value. */
  mode: z.string(),
  hosts: z.array(z.string()),
  places: z.array(z.string()),
  skill_sees: z.enum(["a placeholder", "the real value"]),
});

export const ResultDocument = z.object({
  success: z.boolean(),
  stdout: z.string(),
  stderr: z.string(),
  exitCode: z.number().int(),
  duration: z.number(),
  reason: z.string(),
  truncated: z.boolean(),
  redacted: z.boolean(),
  policy: z.object({
    isolation: z.string(),
    egress: z.string(),
    egress_private_allowed: z.array(z.string()),
    allowed_hosts: z.array(z.string()),
    env_names: z.array(z.string()),
    timeout_seconds: z.number().int(),
    deno_version: z.string(),
    deno_args: z.array(z.string()),
    /** Each granted secret as the runner's binding says it may be used. */
    secrets: z.array(SecretUseDocument),
    /** Placeholders the skill sent where their binding does not allow: each such request was refused (403). */
    violations: z.array(z.object({ secret: z.string(), host: z.string(), where: z.string() })),
    /** Secrets whose value the runner's proxy put into a request to a bound host. */
    secrets_used: z.array(z.string()),
  }),
});

export const StatusDocument = z
  .object({
    request_id: z.string(),
    status,
    skill_id: z.string(),
    agent: z.string().optional(),
    code_hash: z.string(),
    code_size: z.number().int(),
    secrets: z.array(z.string()),
    network: z.array(z.string()),
    timeout_seconds: z.number().int(),
    created_at: z.number().int(),
    expires_at: z.number().int(),
    approved_at: z.number().int().optional(),
    decided_at: z.number().int().optional(),
    decided_by: z.string().optional(),
    executed_at: z.number().int().optional(),
    completed_at: z.number().int().optional(),
    result: ResultDocument.optional(),
    output_purged_at: z.number().int().optional(),
    error: z.string().optional(),
  })
  .meta({ id: "Status" });

export const HealthDocument = z
  .object({
    status: z.enum(["ok", "degraded"]),
    telegram_configured: z.boolean(),
    runner_reachable: z.boolean(),
    isolation: z.string().optional(),
    egress: z.string().optional(),
    egress_private_allowed: z.array(z.string()).optional(),
    /** Each secret the runner holds, as its binding says it may be used: put one of `hosts` in a request's network. */
    secrets: z.array(SecretUseDocument).optional(),
    /** The sandbox's weaker points as the runner reported them (shared uid, deno-only egress, env-mode secrets). */
    warnings: z.array(z.string()).optional(),
    telegram: z.string().optional(),
    runner_signing_key: z.string().optional(),
    runner_signing_key_source: z.enum(["dstack", "local"]).optional(),
    gateway_signing_key: z.string().optional(),
    timestamp: z.number().int(),
  })
  .meta({ id: "Health" });

export const ErrorDocument = z.object({ error: z.string(), code: z.string() }).meta({ id: "Error" });
