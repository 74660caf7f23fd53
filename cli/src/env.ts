import { DEFAULT_PATHS, parseEnv } from "@oauth3/shared";
import { z } from "zod";

const url = z.url({ protocol: /^https?$/ });

/** Every variable the CLI reads, checked once before any command runs. */
const schema = z.object({
  /** The gateway's operator socket (operator commands, and audit/verify/self-audit without --url). */
  OPERATOR_SOCKET: z.string().min(1).default(DEFAULT_PATHS.operatorSocket),
  /** The agent API (run, status): OAUTH3_URL, else OAUTH3_PROXY_URL (what compose gives the agent). */
  OAUTH3_URL: url.optional(),
  OAUTH3_PROXY_URL: url.optional(),
  /** The agent's bearer token, when the gateway has AGENT_TOKENS. */
  OAUTH3_TOKEN: z.string().min(1).optional(),
  /** A remote auditor's token (--url), one whose entry is in the gateway's AUDIT_TOKENS. */
  OAUTH3_AUDIT_TOKEN: z.string().min(1).optional(),
});

export type CliEnv = z.infer<typeof schema>;

/** The CLI's environment, or an error naming every bad variable (the CLI exits 2 with it). */
export function loadCliEnv(env: NodeJS.ProcessEnv): CliEnv {
  // Only this schema's keys: the rest of a shell's environment is none of its business.
  const own = Object.fromEntries(Object.keys(schema.shape).map((k) => [k, env[k]]));
  return parseEnv(schema, own, "oauth3");
}
