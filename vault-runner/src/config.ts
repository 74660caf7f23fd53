import { existsSync } from "node:fs";
import { resolve } from "node:path";
import { z } from "zod";
import { commaList, DEFAULT_PATHS, envInt as int, envKeys, LIMITS, LOG_LEVEL, parseEnv } from "@oauth3/shared";

const schema = z.object({
  RUNNER_SOCKET: z.string().min(1).default(DEFAULT_PATHS.runnerSocket),
  RUNNER_STATE_DIR: z.string().min(1).default(DEFAULT_PATHS.runnerState),
  RUNNER_WORK_DIR: z.string().min(1).optional(),
  SECRETS_FILE: z.string().min(1).optional(),
  SECRETS_DIR: z.string().min(1).optional(),
  // Skill secrets as one JSON document (or base64 of it), e.g. from Phala Cloud's encrypted env.
  SECRETS_JSON: z.string().min(1).optional(),
  // Where each secret may be used (bindings.ts): a file of binding lines, and/or the same lines here.
  RUNNER_BINDINGS_FILE: z.string().min(1).optional(),
  RUNNER_BINDINGS: z.string().min(1).optional(),
  DENO_PATH: z.string().min(1).optional(),
  RUNNER_MAX_TIMEOUT_SECONDS: int(1, LIMITS.hardMaxTimeoutSeconds, 300),
  RUNNER_MAX_CONCURRENT: int(1, 256, 4),
  RUNNER_MAX_QUEUE: int(0, 10_000, 64),
  RUNNER_OUTPUT_LIMIT_BYTES: int(1024, 16 * 1024 * 1024, 1024 * 1024),
  RUNNER_V8_MAX_OLD_SPACE_MB: int(16, 4096, 128),
  RUNNER_MEMORY_LIMIT_MB: int(64, 16_384, 512),
  RUNNER_DISK_LIMIT_MB: int(8, 16_384, 64),
  RUNNER_ISOLATION: z.enum(["auto", "uid", "shared-uid"]).default("auto"),
  RUNNER_SKILL_UID_BASE: int(1000, 2 ** 31 - 70_000, 61_000),
  RUNNER_EXTRA_CA_FILE: z.string().min(1).optional(),
  RUNNER_EGRESS: z.enum(["auto", "proxy+firewall", "deno-only"]).default("auto"),
  // The largest request body a run that holds placeholders may send (checked as it streams).
  RUNNER_EGRESS_BODY_MAX_MB: int(1, 4096, 32),
  RUNNER_EGRESS_ALLOW_PRIVATE: commaList(/^[a-z0-9.-]+:\d{1,5}$/, "must be host:port", { lower: true }),
  RUNNER_EGRESS_HOSTS: commaList(/^[a-z0-9.-]+=[0-9a-f.:]+$/, "must be name=address", { lower: true }),
  // The dstack guest agent: a Unix socket path or an http(s) URL (a simulator). Unset: no TEE.
  RUNNER_DSTACK_ENDPOINT: z
    .string()
    .refine((s) => s.startsWith("/") || /^https?:\/\//.test(s), "must be an absolute socket path or an http(s) URL")
    .optional(),
  LOG_LEVEL,
});

/** Every variable the runner reads (from the schema). The launcher passes the runner exactly these (and nothing else). */
export const RUNNER_ENV_KEYS = envKeys(schema);

export type RunnerConfig = ReturnType<typeof loadRunnerConfig>;

/**
 * Variables that belong to the gateway. If the runner can see any of them, the deployment has
 * mixed the two processes' credentials (a shared env_file, say) and the split is void: refuse.
 */
const FOREIGN = /^TELEGRAM_/;

export function loadRunnerConfig(rawEnv: NodeJS.ProcessEnv) {
  const c = parseEnv(schema, rawEnv, "vault-runner", {
    test: (k) => FOREIGN.test(k),
    hint: "The Telegram token belongs to the gateway only; give the runner its own environment.",
  });
  if (c.RUNNER_V8_MAX_OLD_SPACE_MB >= c.RUNNER_MEMORY_LIMIT_MB) {
    throw new Error("RUNNER_V8_MAX_OLD_SPACE_MB must be below RUNNER_MEMORY_LIMIT_MB");
  }
  const stateDir = resolve(c.RUNNER_STATE_DIR);
  const defaultSecretsFile = resolve("secrets.env");
  const defaultBindingsFile = resolve("bindings.conf");
  return {
    socketPath: resolve(c.RUNNER_SOCKET),
    stateDir,
    workDir: c.RUNNER_WORK_DIR ? resolve(c.RUNNER_WORK_DIR) : undefined,
    secretsFile: c.SECRETS_FILE ? resolve(c.SECRETS_FILE) : existsSync(defaultSecretsFile) ? defaultSecretsFile : undefined,
    secretsDir: c.SECRETS_DIR ? resolve(c.SECRETS_DIR) : undefined,
    secretsJson: c.SECRETS_JSON,
    bindingsFile: c.RUNNER_BINDINGS_FILE
      ? resolve(c.RUNNER_BINDINGS_FILE)
      : existsSync(defaultBindingsFile)
        ? defaultBindingsFile
        : undefined,
    bindingsEnv: c.RUNNER_BINDINGS,
    denoPath: c.DENO_PATH,
    maxTimeoutSeconds: c.RUNNER_MAX_TIMEOUT_SECONDS,
    maxConcurrent: c.RUNNER_MAX_CONCURRENT,
    maxQueue: c.RUNNER_MAX_QUEUE,
    outputLimitBytes: c.RUNNER_OUTPUT_LIMIT_BYTES,
    v8MaxOldSpaceMb: c.RUNNER_V8_MAX_OLD_SPACE_MB,
    memoryLimitMb: c.RUNNER_MEMORY_LIMIT_MB,
    diskLimitMb: c.RUNNER_DISK_LIMIT_MB,
    isolation: c.RUNNER_ISOLATION,
    egress: c.RUNNER_EGRESS,
    extraCaFile: c.RUNNER_EXTRA_CA_FILE ? resolve(c.RUNNER_EXTRA_CA_FILE) : undefined,
    egressBodyMaxBytes: c.RUNNER_EGRESS_BODY_MAX_MB * 1024 * 1024,
    egressAllowPrivate: new Set(c.RUNNER_EGRESS_ALLOW_PRIVATE),
    egressHosts: new Map(c.RUNNER_EGRESS_HOSTS.map((pair) => pair.split("=") as [string, string])),
    skillUidBase: c.RUNNER_SKILL_UID_BASE,
    dstackEndpoint: c.RUNNER_DSTACK_ENDPOINT,
    logLevel: c.LOG_LEVEL,
  };
}
