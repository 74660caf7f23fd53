import { resolve } from "node:path";
import { z } from "zod";
import { commaList, DEFAULT_PATHS, envInt as int, envKeys, LIMITS, LOG_LEVEL, parseEnv } from "@oauth3/shared";

const tokenList = commaList(/^[a-zA-Z0-9_.-]{1,64}:[0-9a-f]{64}$/, "must be name:sha256hex (make entries with `oauth3 token <name>`)");

const hostPortList = commaList(/^[a-z0-9.-]+:\d{1,5}$|^\[[0-9a-f:]+\]:\d{1,5}$/, "must be host:port", { lower: true });

const schema = z.object({
  PORT: int(0, 65535, 3737),
  HOST: z.string().min(1).default("127.0.0.1"),
  DB_PATH: z.string().min(1).default(DEFAULT_PATHS.gatewayDb),
  RUNNER_SOCKET: z.string().min(1).default(DEFAULT_PATHS.runnerSocket),
  OPERATOR_SOCKET: z.string().min(1).default(DEFAULT_PATHS.operatorSocket),
  EXECUTOR_MODE: z.string().default("direct"),
  TELEGRAM_BOT_TOKEN: z.string().min(1).optional(),
  TELEGRAM_CHAT_ID: z
    .string()
    .regex(/^-?\d+$/, "must be a numeric chat id")
    .optional(),
  TELEGRAM_APPROVER_IDS: commaList(/^\d+$/, "must be a numeric user id (comma-separated)"),
  TELEGRAM_API_ROOT: z.url({ protocol: /^https?$/ }).default("https://api.telegram.org"),
  TELEGRAM_WEBHOOK_URL: z.url({ protocol: /^https?$/ }).optional(),
  // The Bot API allows 1-256 characters of A-Z a-z 0-9 _ -; we demand enough to be unguessable.
  TELEGRAM_WEBHOOK_SECRET: z
    .string()
    .regex(/^[A-Za-z0-9_-]{32,256}$/, "must be 32-256 characters of A-Z a-z 0-9 _ -")
    .optional(),
  TELEGRAM_WEBHOOK_PORT: int(1, 65535, 3738),
  GRANT_TTL_SECONDS: int(60, 24 * 3600, 3600),
  MAX_PENDING_REQUESTS: int(1, 10_000, 20),
  SUBMISSIONS_PER_MINUTE: int(1, 100_000, 30),
  APPROVAL_TTL_SECONDS: int(10, 7 * 24 * 3600, 600),
  MAX_TIMEOUT_SECONDS: int(1, LIMITS.hardMaxTimeoutSeconds, 300),
  SKILL_FETCH_TIMEOUT_MS: int(100, 120_000, 10_000),
  SKILL_FETCH_MAX_BYTES: int(1, LIMITS.maxCodeBytes, LIMITS.maxCodeBytes),
  SKILL_FETCH_ALLOW_PRIVATE: hostPortList,
  OUTPUT_RETENTION_HOURS: int(1, 24 * 365, 24 * 7),
  AGENT_NOTIFY_URL: z.url({ protocol: /^https?$/ }).optional(),
  AGENT_NOTIFY_TOKEN: z.string().min(1).optional(),
  AGENT_TOKENS: tokenList,
  // Read-only remote audit (GET /operator/{audit,attestation,health} on AUDIT_PORT), same format.
  AUDIT_TOKENS: tokenList,
  AUDIT_PORT: int(1, 65_535, 3739),
  // More names agents or auditors reach this gateway by (e.g. a dstack gateway domain), and origins
  // of web pages allowed to call it (none by default): http/browser-guard.ts.
  ALLOWED_HOSTS: commaList(/^(\[[0-9a-f:.]+\]|[a-z0-9.-]+)$/i, "must be a host name without a port (IPv6 in brackets)"),
  ALLOWED_ORIGINS: commaList(/^https?:\/\/[^/\s]+$/, "must be an origin like https://app.example"),
  LOG_LEVEL,
  // The agent port's open sockets, and its open long-polls (?wait) plus event streams, in total and
  // per agent: what an agent can hold open is bounded, whatever it sends.
  MAX_CONNECTIONS: int(16, 100_000, 512),
  MAX_WAITERS: int(1, 100_000, 256),
  MAX_WAITERS_PER_AGENT: int(1, 100_000, 32),
});

/** Every variable the gateway reads (from the schema). The launcher passes the gateway exactly these. */
export const GATEWAY_ENV_KEYS = envKeys(schema);

/** Variables that belong to the runner. The gateway must never be able to read skill secrets. */
const FOREIGN = new Set(["SECRETS_FILE", "SECRETS_DIR", "SECRETS_JSON"]);

export type GatewayConfig = ReturnType<typeof loadGatewayConfig>;

function tokenMap(list: readonly string[]): Map<string, string> {
  return new Map(list.map((e) => e.split(":") as [string, string]));
}

export function loadGatewayConfig(rawEnv: NodeJS.ProcessEnv) {
  const c = parseEnv(schema, rawEnv, "gateway", {
    test: (k) => FOREIGN.has(k),
    hint: "Skill secrets belong to the vault-runner only; give the gateway its own environment.",
  });
  if (c.AGENT_NOTIFY_URL && !c.AGENT_NOTIFY_TOKEN) {
    throw new Error("AGENT_NOTIFY_URL needs AGENT_NOTIFY_TOKEN (the agent gateway's hook token)");
  }
  if (c.TELEGRAM_WEBHOOK_URL && !c.TELEGRAM_WEBHOOK_SECRET) {
    throw new Error(
      "TELEGRAM_WEBHOOK_URL needs TELEGRAM_WEBHOOK_SECRET (32+ random characters): without it anyone could post fake updates",
    );
  }
  const agentHashes = new Set(tokenMap(c.AGENT_TOKENS).values());
  if ([...tokenMap(c.AUDIT_TOKENS).values()].some((h) => agentHashes.has(h))) {
    throw new Error("a token is in both AGENT_TOKENS and AUDIT_TOKENS: give auditors their own (oauth3 token <name>)");
  }
  if (c.EXECUTOR_MODE !== "direct") {
    throw new Error(
      `EXECUTOR_MODE=${c.EXECUTOR_MODE} is not supported: only "direct" (skills run by the ` +
        "vault-runner beside the gateway) exists in this version",
    );
  }
  return {
    port: c.PORT,
    host: c.HOST,
    maxConnections: c.MAX_CONNECTIONS,
    waiters: { total: c.MAX_WAITERS, perAgent: Math.min(c.MAX_WAITERS_PER_AGENT, c.MAX_WAITERS) },
    dbPath: resolve(c.DB_PATH),
    runnerSocket: resolve(c.RUNNER_SOCKET),
    operatorSocket: resolve(c.OPERATOR_SOCKET),
    telegram: c.TELEGRAM_BOT_TOKEN
      ? {
          token: c.TELEGRAM_BOT_TOKEN,
          chatId: c.TELEGRAM_CHAT_ID === undefined ? undefined : Number(c.TELEGRAM_CHAT_ID),
          // Default: the chat id, which in a private chat is the user's own id.
          approverIds: new Set(
            c.TELEGRAM_APPROVER_IDS.length > 0
              ? c.TELEGRAM_APPROVER_IDS.map(Number)
              : c.TELEGRAM_CHAT_ID !== undefined && Number(c.TELEGRAM_CHAT_ID) > 0
                ? [Number(c.TELEGRAM_CHAT_ID)]
                : [],
          ),
          apiRoot: c.TELEGRAM_API_ROOT.replace(/\/+$/, ""),
          webhook: c.TELEGRAM_WEBHOOK_URL
            ? { url: c.TELEGRAM_WEBHOOK_URL, secret: c.TELEGRAM_WEBHOOK_SECRET!, port: c.TELEGRAM_WEBHOOK_PORT }
            : undefined,
        }
      : undefined,
    grantTtlMs: c.GRANT_TTL_SECONDS * 1000,
    maxPending: c.MAX_PENDING_REQUESTS,
    submissionsPerMinute: c.SUBMISSIONS_PER_MINUTE,
    approvalTtlMs: c.APPROVAL_TTL_SECONDS * 1000,
    maxTimeoutSeconds: c.MAX_TIMEOUT_SECONDS,
    fetch: {
      timeoutMs: c.SKILL_FETCH_TIMEOUT_MS,
      maxBytes: c.SKILL_FETCH_MAX_BYTES,
      allowPrivate: new Set(c.SKILL_FETCH_ALLOW_PRIVATE),
    },
    outputRetentionMs: c.OUTPUT_RETENTION_HOURS * 3600 * 1000,
    agentNotify: c.AGENT_NOTIFY_URL ? { url: c.AGENT_NOTIFY_URL, token: c.AGENT_NOTIFY_TOKEN! } : undefined,
    agentTokens: tokenMap(c.AGENT_TOKENS),
    auditTokens: tokenMap(c.AUDIT_TOKENS),
    auditPort: c.AUDIT_PORT,
    allowedHosts: c.ALLOWED_HOSTS,
    allowedOrigins: c.ALLOWED_ORIGINS,
    logLevel: c.LOG_LEVEL,
  };
}
