import type { Context, Hono } from "hono";
import { HTTPException } from "hono/http-exception";
import type { ContentfulStatusCode } from "hono/utils/http-status";
import type { Logger } from "pino";
import { GatewayError, type ErrorKind } from "../errors.js";

/** The one place a kind of refusal becomes an HTTP status. */
export const STATUS: Record<ErrorKind, ContentfulStatusCode> = {
  invalid: 400,
  unauthorized: 401,
  forbidden: 403,
  not_found: 404,
  conflict: 409,
  too_large: 413,
  unsupported: 415,
  mismatch: 422,
  limited: 429,
  upstream_failed: 502,
  unavailable: 503,
};

/** The one place errors become responses: `{ error, code }`, never a stack trace. */
export function errorResponse(err: Error, c: Context, logger: Logger): Response {
  if (err instanceof GatewayError) return c.json({ error: err.message, code: err.code }, STATUS[err.kind]);
  if (err instanceof HTTPException) {
    return c.json({ error: err.message || "bad request", code: "http_error" }, err.status);
  }
  logger.error({ err: `${err.name}: ${err.message}`, path: c.req.path }, "unhandled error");
  return c.json({ error: "internal error", code: "internal" }, 500);
}

/** Unknown routes and thrown errors answered the same way on every face. */
// biome-ignore lint/suspicious/noExplicitAny: any app, whatever its variables
export function jsonErrors<H extends Hono<any>>(app: H, logger: Logger): H {
  app.notFound(() => {
    throw new GatewayError("not_found", "no_route", "no such route");
  });
  app.onError((err, c) => errorResponse(err, c, logger));
  return app;
}
