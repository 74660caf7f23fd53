import { createRoute, z } from "@hono/zod-openapi";
import { REQUEST_ID_PATTERN } from "@oauth3/shared";
import { ExecuteBody } from "../intake/prepare.js";
import { AcceptedDocument, ErrorDocument, HealthDocument, StatusDocument } from "./api-schemas.js";

/**
 * The agent API's routes, each defined once: path, parameters, body and responses. The server
 * registers its handlers on these (agent-api.ts), the validators come from them, and
 * /openapi.json is generated from them (OpenAPI 3.1), so the document cannot drift from the code.
 */
const json = <S extends z.ZodType>(schema: S) => ({ "application/json": { schema } });
const error = (description: string) => ({ description, content: json(ErrorDocument) });

/** A request id in the path. A malformed one is "not found" (404), like an unknown one. */
const idParam = z.object({
  id: z
    .string()
    .regex(REQUEST_ID_PATTERN)
    .meta({ param: { in: "path" }, description: "exec_ and 16 hex digits" }),
});

export const submitRoute = createRoute({
  method: "post",
  path: "/execute",
  summary: "Ask to run a skill; a human approves or denies",
  request: {
    headers: z.object({
      "idempotency-key": z
        .string()
        .max(128)
        .optional()
        .meta({ param: { in: "header" } }),
    }),
    body: { required: true, content: json(ExecuteBody) },
  },
  responses: {
    200: { description: "Accepted (or the identical/idempotent earlier request)", content: json(AcceptedDocument) },
    400: error("Invalid body, name, host or skill"),
    401: error("Agent token missing or unknown"),
    413: error("Body or skill too large"),
    415: error("The body is not sent as application/json"),
    422: error("Idempotency-Key reused with another body"),
    429: error("Rate limited or too many pending"),
    503: error("The vault-runner is unreachable"),
  },
});

export const statusRoute = createRoute({
  method: "get",
  path: "/execute/{id}/status",
  summary: "Status and result; ?wait=<s> long-polls until a final status",
  request: {
    params: idParam,
    query: z.object({
      wait: z
        .string()
        .regex(/^\d{1,3}(\.\d+)?$/)
        .optional()
        .meta({ param: { in: "query" }, description: "seconds, at most 60" }),
    }),
  },
  responses: {
    200: { description: "The request", content: json(StatusDocument) },
    400: error("wait is not a number of seconds"),
    404: error("No such request (or not this agent's)"),
    429: error("Too many open waits and event streams (too_many_waiters)"),
  },
});

export const eventsRoute = createRoute({
  method: "get",
  path: "/execute/{id}/events",
  summary: "Server-sent events: `status` with the Status document now and at each transition",
  request: { params: idParam },
  responses: {
    200: { description: "text/event-stream", content: { "text/event-stream": { schema: z.string() } } },
    404: error("No such request"),
    429: error("Too many open waits and event streams (too_many_waiters)"),
  },
});

export const healthRoute = createRoute({
  method: "get",
  path: "/health",
  summary: "Liveness and the sandbox in force",
  security: [{}],
  responses: {
    200: { description: "OK", content: json(HealthDocument) },
    503: { description: "Runner unreachable", content: json(HealthDocument) },
  },
});

/** The document's frame: the routes above fill its paths and components. */
export const OPENAPI_INFO = {
  openapi: "3.1.0",
  info: { title: "oauth3-proxy agent API", version: "1" },
  security: [{}, { agentToken: [] as string[] }] as Array<Record<string, string[]>>,
};
