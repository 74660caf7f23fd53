import { createHash, randomBytes } from "node:crypto";

/** How a bearer token is kept in configuration (AGENT_TOKENS, AUDIT_TOKENS): its SHA-256, hex. */
export function hashToken(token: string): string {
  return createHash("sha256").update(token, "utf8").digest("hex");
}

/** A new random token and the `name:sha256hex` entry that accepts it (shown once, never stored). */
export function newAgentToken(name: string): { token: string; entry: string } {
  const token = `oa3_${randomBytes(24).toString("base64url")}`;
  return { token, entry: `${name}:${hashToken(token)}` };
}
