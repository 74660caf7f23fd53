import { z } from "zod";
import { REQUEST_ID_PATTERN } from "@oauth3/shared";
import { AcceptedDocument, ErrorDocument, HealthDocument, StatusDocument } from "./api-schemas.js";
import { ExecuteBody } from "../intake/prepare.js";

const schema = (s: z.ZodType) => {
  const { $schema, ...rest } = z.toJSONSchema(s, { io: "input", unrepresentable: "any" }) as Record<string, unknown>;
  void $schema;
  return rest;
};

/** The agent API as OpenAPI 3.1, generated from the schemas the server validates and answers with. */
export function openApiDocument() {
  const json = (ref: string) => ({ "application/json": { schema: { $ref: `#/components/schemas/${ref}` } } });
  const error = (description: string) => ({ description, content: json("Error") });
  const id = { name: "id", in: "path", required: true, schema: { type: "string", pattern: REQUEST_ID_PATTERN.source } };
  return {
    openapi: "3.1.0",
    info: { title: "oauth3-proxy agent API", version: "1" },
    components: {
      schemas: {
        ExecuteBody: schema(ExecuteBody),
        Accepted: schema(AcceptedDocument),
        Status: schema(StatusDocument),
        Health: schema(HealthDocument),
        Error: schema(ErrorDocument),
      },
      securitySchemes: { agentToken: { type: "http", scheme: "bearer", description: "required when AGENT_TOKENS is configured" } },
    },
    security: [{}, { agentToken: [] }],
    paths: {
      "/execute": {
        post: {
          summary: "Ask to run a skill; a human approves or denies",
          parameters: [{ name: "Idempotency-Key", in: "header", required: false, schema: { type: "string", maxLength: 128 } }],
          requestBody: { required: true, content: json("ExecuteBody") },
          responses: {
            "200": { description: "Accepted (or the identical/idempotent earlier request)", content: json("Accepted") },
            "400": error("Invalid body, name, host or skill"), "401": error("Agent token missing or unknown"),
            "413": error("Body or skill too large"), "422": error("Idempotency-Key reused with another body"),
            "429": error("Rate limited or too many pending"), "503": error("The vault-runner is unreachable"),
          },
        },
      },
      "/execute/{id}/status": {
        get: {
          summary: "Status and result; ?wait=<s> long-polls until a final status",
          parameters: [id, { name: "wait", in: "query", required: false, schema: { type: "number", minimum: 0, maximum: 60 } }],
          responses: {
            "200": { description: "The request", content: json("Status") }, "400": error("wait is not a number of seconds"),
            "404": error("No such request (or not this agent's)"), "429": error("Too many open waits and event streams (too_many_waiters)"),
          },
        },
      },
      "/execute/{id}/events": {
        get: {
          summary: "Server-sent events: `status` with the Status document now and at each transition",
          parameters: [id],
          responses: {
            "200": { description: "text/event-stream", content: { "text/event-stream": { schema: { type: "string" } } } },
            "404": error("No such request"), "429": error("Too many open waits and event streams (too_many_waiters)"),
          },
        },
      },
      "/health": {
        get: { summary: "Liveness and the sandbox in force", security: [{}], responses: { "200": { description: "OK", content: json("Health") }, "503": { description: "Runner unreachable", content: json("Health") } } },
      },
    },
  };
}
