import type { MiddlewareHandler } from "hono";
import { hashToken } from "@oauth3/shared";
import { GatewayError } from "../errors.js";

/**
 * Agent identity: optional bearer tokens, one per agent, configured as `name:sha256hex` pairs (the
 * gateway stores and sees only hashes). When any is configured, every agent route requires one.
 * The agent's name is shown on approval cards and recorded with its requests.
 */
export interface AgentRegistry {
  /** Agent name for a presented token, or undefined. */
  identify(token: string): string | undefined;
  readonly required: boolean;
}

/** The token of an `Authorization: Bearer <token>` header, if there is one. */
function bearerToken(header: string | undefined): string | undefined {
  return header?.startsWith("Bearer ") ? header.slice(7).trim() || undefined : undefined;
}

export function createAgentRegistry(entries: ReadonlyMap<string, string>): AgentRegistry {
  // hash -> name. Looking up a SHA-256 of the presented token leaks nothing useful through timing.
  const byHash = new Map([...entries].map(([name, hash]) => [hash, name] as const));
  return {
    required: byHash.size > 0,
    identify: (token) => byHash.get(hashToken(token)),
  };
}

export type AgentVariables = { agent: string | undefined };

/** Sets `agent` for the route; refuses with 401 when tokens are configured and none valid came. */
export function agentAuth(registry: AgentRegistry): MiddlewareHandler<{ Variables: AgentVariables }> {
  return async function agentAuthMiddleware(c, next) {
    const token = bearerToken(c.req.header("authorization"));
    const agent = token ? registry.identify(token) : undefined;
    if (registry.required && !agent) {
      throw new GatewayError("unauthorized", "unauthorized", token ? "unknown agent token" : "an agent bearer token is required");
    }
    c.set("agent", agent);
    await next();
  };
}

/**
 * Read-only remote audit access: always requires one of AUDIT_TOKENS (never an agent token; the
 * configuration refuses a token in both lists).
 */
export function auditAuth(registry: AgentRegistry): MiddlewareHandler {
  return async function auditAuthMiddleware(c, next) {
    const token = bearerToken(c.req.header("authorization"));
    if (!token || !registry.identify(token)) {
      throw new GatewayError("unauthorized", "unauthorized", token ? "unknown audit token" : "an audit bearer token is required");
    }
    await next();
  };
}
