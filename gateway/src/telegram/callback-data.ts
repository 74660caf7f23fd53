import { timingSafeEqual } from "node:crypto";

/**
 * Inline-button payloads. Telegram clients can send ANY bytes as callback data, so this is parsed
 * strictly and used only as a lookup key plus a nonce to compare; nothing in it is trusted.
 *   a:<16 hex request>:<nonce>  run once      d:…  deny      g:…  run once + grant
 *   r:<12 hex grant>:<nonce>    revoke a grant
 * Nonces are 128 random bits, base64url (22 chars); the longest payload is 41 bytes (limit 64).
 */
export type CallbackAction =
  | { kind: "approve" | "deny" | "grant"; requestId: string; nonce: string }
  | { kind: "revoke"; grantId: string; nonce: string };

const REQUEST_ACTION = /^([adg]):([0-9a-f]{16}):([A-Za-z0-9_-]{22})$/;
const REVOKE_ACTION = /^r:([0-9a-f]{12}):([A-Za-z0-9_-]{22})$/;
const KINDS = { a: "approve", d: "deny", g: "grant" } as const;

export function encodeRequestAction(kind: "approve" | "deny" | "grant", requestId: string, nonce: string): string {
  return `${kind[0]}:${requestId.replace(/^exec_/, "")}:${nonce}`;
}

export function encodeRevoke(grantId: string, nonce: string): string {
  return `r:${grantId}:${nonce}`;
}

export function parseCallbackData(data: string | undefined): CallbackAction | undefined {
  if (!data || data.length > 64) return undefined;
  const req = REQUEST_ACTION.exec(data);
  if (req) return { kind: KINDS[req[1] as "a" | "d" | "g"], requestId: `exec_${req[2]}`, nonce: req[3]! };
  const rev = REVOKE_ACTION.exec(data);
  if (rev) return { kind: "revoke", grantId: rev[1]!, nonce: rev[2]! };
  return undefined;
}

/** Constant-time comparison of two nonces (different lengths are simply unequal). */
export function nonceMatches(expected: string, given: string): boolean {
  const a = Buffer.from(expected);
  const b = Buffer.from(given);
  return a.length === b.length && timingSafeEqual(a, b);
}
