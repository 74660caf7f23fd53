import { randomBytes } from "node:crypto";
import { z } from "zod";
import { checkArgName, LIMITS, parseSkillHeader, PolicyError, resolveRunSpec, sha256Hex } from "@oauth3/shared";
import { GatewayError } from "../errors.js";
import { fetchSkill, type SkillFetchOptions } from "./skill-source.js";
import type { ExecRequest, SecretUse } from "../store/store.js";

/**
 * The upstream body, plus optional `network` and `timeout_seconds`. An unknown field is refused
 * (400 invalid_body): a misspelt `network` or `timeout_seconds` must not be silently dropped.
 */
export const ExecuteBody = z
  .strictObject({
    skill_id: z
      .string()
      .min(1)
      .max(LIMITS.maxSkillIdLength)
      .regex(/^[^\p{Cc}\p{Cf}]+$/u, "must not contain control or invisible formatting characters")
      // The document's pattern without the JS flag (the OpenAPI generator would append "/u").
      .meta({ pattern: "^[^\\p{Cc}\\p{Cf}]+$" }),
    skill_url: z.string().min(1),
    secrets: z.array(z.string()).max(LIMITS.maxSecrets).default([]),
    network: z.array(z.string()).max(LIMITS.maxHosts).optional(),
    args: z.record(z.string(), z.union([z.string(), z.number(), z.boolean()])).default({}),
    timeout_seconds: z.number().int().positive().optional(),
  })
  .meta({ id: "ExecuteBody" });
export type ExecuteBody = z.infer<typeof ExecuteBody>;

/**
 * An agent's parsed JSON judged as a submission: every key validated, none silently dropped
 * (`__proto__` as an arg name is refused, not lost), lone surrogates refused anywhere.
 */
export function parseExecuteBody(raw: unknown): ExecuteBody {
  if (typeof raw === "object" && raw !== null) {
    const r = raw as Record<string, unknown>;
    if (!r.skill_id || !r.skill_url) {
      throw new GatewayError("invalid", "missing_field", "Missing skill_id or skill_url");
    }
    refuseLoneSurrogates(raw, "body");
    // Every arg name is checked here, before zod builds an object: a key such as __proto__ would
    // otherwise vanish silently instead of being refused.
    if (typeof r.args === "object" && r.args !== null && !Array.isArray(r.args)) {
      for (const name of Object.keys(r.args)) {
        try {
          checkArgName(name);
        } catch (err) {
          if (err instanceof PolicyError) throw new GatewayError("invalid", err.code, err.message);
          throw err;
        }
      }
    }
  }
  const parsed = ExecuteBody.safeParse(raw);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    const where = issue?.path.join(".") || "body";
    throw new GatewayError("invalid", "invalid_body", `${where}: ${issue?.message ?? "invalid"}`);
  }
  return parsed.data;
}

/**
 * A lone UTF-16 surrogate (JSON's "\ud800") has no UTF-8 form: what is stored, shown and signed
 * would differ. Refused anywhere in the body, keys included.
 */
const LONE_SURROGATE = /\p{Cs}/u; // with the u flag a valid pair is one code point, never Cs
function refuseLoneSurrogates(value: unknown, path: string): void {
  if (typeof value === "string") {
    if (LONE_SURROGATE.test(value))
      throw new GatewayError("invalid", "invalid_body", `${path}: contains a lone surrogate (not valid Unicode)`);
  } else if (Array.isArray(value)) {
    for (const [i, v] of value.entries()) refuseLoneSurrogates(v, `${path}[${i}]`);
  } else if (typeof value === "object" && value !== null) {
    for (const [k, v] of Object.entries(value)) {
      if (LONE_SURROGATE.test(k))
        throw new GatewayError("invalid", "invalid_body", `${path}: a key contains a lone surrogate (not valid Unicode)`);
      refuseLoneSurrogates(v, `${path}.${k}`);
    }
  }
}

export interface IntakeDeps {
  fetch: SkillFetchOptions;
  maxTimeoutSeconds: number;
  approvalTtlMs: number;
  /** The secrets the runner holds, by name, with the runner's binding of each. */
  secretNames: () => Promise<ReadonlyMap<string, SecretUse | undefined>>;
  now?: () => number;
}

/**
 * Turns an agent's body into a stored-ready request: fetch the code once, hash the exact bytes,
 * apply the same rules the runner will apply, and refuse unknown secrets before a human is asked.
 */
export async function prepareRequest(body: ExecuteBody, deps: IntakeDeps): Promise<{ request: ExecRequest; code: Buffer }> {
  const { bytes, source } = await fetchSkill(body.skill_url, deps.fetch);
  if (bytes.length === 0) throw new GatewayError("invalid", "invalid_skill_code", "skill code is empty");
  let text: string;
  try {
    text = new TextDecoder("utf-8", { fatal: true }).decode(bytes);
  } catch {
    throw new GatewayError("invalid", "invalid_skill_code", "skill code must be UTF-8 text");
  }
  const header = parseSkillHeader(text);
  let spec: ReturnType<typeof resolveRunSpec>;
  try {
    spec = resolveRunSpec(
      {
        secrets: body.secrets,
        network: body.network,
        args: Object.entries(body.args).map(([name, value]) => ({ name, value: String(value) })),
        timeoutSeconds: body.timeout_seconds,
      },
      header,
      deps.maxTimeoutSeconds,
    );
  } catch (err) {
    if (err instanceof PolicyError) throw new GatewayError("invalid", err.code, err.message);
    throw err;
  }
  const held = await deps.secretNames();
  const unknown = spec.secretNames.filter((n) => !held.has(n));
  if (unknown.length > 0) {
    throw new GatewayError("invalid", "unknown_secret", `the vault-runner holds no secret named ${unknown.join(", ")}`);
  }
  // The runner's bindings decide (and the runner checks again): a bound secret is of use only
  // toward one of its hosts, so a request that grants none of them is refused here, clearly.
  const secretBindings = spec.secretNames.map((n) => held.get(n)).filter((b): b is SecretUse => b !== undefined);
  for (const b of secretBindings) {
    if (b.mode === "placeholder" && !b.hosts.some((h) => spec.network.includes(h))) {
      throw new GatewayError(
        "invalid",
        "secret_host_not_granted",
        `secret ${b.name} may only be used toward ${b.hosts.join(", ")} (the vault-runner's binding); add one of them to network`,
      );
    }
  }
  const now = (deps.now ?? Date.now)();
  return {
    code: bytes,
    request: {
      id: `exec_${randomBytes(8).toString("hex")}`,
      status: "pending",
      skillId: body.skill_id,
      ...(header.name !== undefined && { skillName: header.name.slice(0, LIMITS.maxSkillIdLength) }),
      ...(header.description !== undefined && {
        description: header.description.slice(0, LIMITS.maxDescriptionLength),
      }),
      source,
      codeSha256: sha256Hex(bytes),
      codeSize: bytes.length,
      secretNames: spec.secretNames,
      ...(secretBindings.length > 0 && { secretBindings }),
      network: spec.network,
      args: spec.args,
      timeoutSeconds: spec.timeoutSeconds,
      createdAt: now,
      expiresAt: now + deps.approvalTtlMs,
    },
  };
}
