/**
 * What went wrong, in the gateway's own terms: a kind (what sort of refusal), a stable code and a
 * human message. Use cases throw these; they never know about HTTP. The one mapping to HTTP
 * statuses is http/errors.ts, so every face (agent API, operator socket, remote audit) answers
 * the same kind with the same status.
 */
export type ErrorKind =
  | "invalid"
  | "unauthorized"
  | "forbidden"
  | "not_found"
  | "conflict"
  | "too_large"
  | "unsupported"
  | "mismatch"
  | "limited"
  | "upstream_failed"
  | "unavailable";

/** `message` keeps upstream's wording where upstream had one (it is the `error` field agents read). */
export class GatewayError extends Error {
  constructor(
    readonly kind: ErrorKind,
    readonly code: string,
    message: string,
  ) {
    super(message);
    this.name = "GatewayError";
  }
}
