import { OpenAPIHono, type Hook } from "@hono/zod-openapi";
import type { Context } from "hono";
import { bodyLimit } from "hono/body-limit";
import { streamSSE } from "hono/streaming";
import { LIMITS } from "@oauth3/shared";
import type { Logger } from "pino";
import type { ApprovalService } from "../approval/approvals.js";
import { GatewayError } from "../errors.js";
import { jsonErrors } from "./errors.js";
import { browserGuard, defaultBrowserGuard, type BrowserGuardOptions } from "./browser-guard.js";
import { parseExecuteBody, type IntakeDeps } from "../intake/prepare.js";
import { statusView } from "./status-view.js";
import { agentAuth, createAgentRegistry, type AgentRegistry, type AgentVariables } from "./agent-auth.js";
import { WaiterLimits } from "../intake/limits.js";
import { createSubmit } from "../intake/submit.js";
import type { AcceptedDocument, HealthDocument } from "./api-schemas.js";
import { eventsRoute, healthRoute, OPENAPI_INFO, statusRoute, submitRoute } from "./routes.js";
import type { z } from "zod";
import { FINAL_STATUSES, type ExecRequest, type RequestStore } from "../store/store.js";

export interface AgentAppDeps {
  store: RequestStore;
  approvals: ApprovalService;
  intake: IntakeDeps;
  logger: Logger;
  telegramConfigured: boolean;
  /** The runner's sandbox modes, or undefined when it is unreachable. */
  runnerHealth: () => Promise<
    | {
        isolation: string;
        egress: string;
        egressPrivateAllowed: string[];
        signingKey?: string;
        signingKeySource?: string;
        secrets?: Array<{ name: string; mode: string; hosts: string[]; places: string[] }>;
      }
    | undefined
  >;
  /** The gateway's public key (audit checkpoints, attestation countersignature), published here. */
  gatewayKey?: string;
  /** Telegram polling state, when a bot is configured. */
  telegramState?: () => string;
  limits: { maxPending: number; submissionsPerMinute: number };
  /** Open long-polls and event streams, in total and per agent (default 256 and 32). */
  waiters?: { total: number; perAgent: number };
  agents?: AgentRegistry;
  /** Who may call: host names served, web origins allowed (http/browser-guard.ts). Default: the built-in names. */
  browserGuard?: BrowserGuardOptions;
}

/** A data: URL of the largest allowed skill, percent-encoded, plus the rest of the body. */
const MAX_BODY_BYTES = LIMITS.maxCodeBytes * 3 + 128 * 1024;
const MAX_WAIT_SECONDS = 60;

/**
 * The agent API (upstream-compatible). The agent is untrusted: this app can submit and read, never
 * decide. Decisions come only from approval channels (operator socket, Telegram).
 */
export function createAgentApp(deps: AgentAppDeps): OpenAPIHono<{ Variables: AgentVariables }> {
  const app = new OpenAPIHono<{ Variables: AgentVariables }>({ defaultHook: refusal });
  const intake = createSubmit(deps);
  app.use(
    "*",
    browserGuard(deps.browserGuard ?? defaultBrowserGuard(), (f) => deps.logger.warn(f, "refused a request from a web page")),
  );
  app.use("/execute", agentAuth(deps.agents ?? createAgentRegistry(new Map())));
  app.use("/execute/*", agentAuth(deps.agents ?? createAgentRegistry(new Map())));
  // Before the route's own validation, in the order upstream answered: size, rate limit, media
  // type, JSON, then every key of the body (a key zod would drop, such as __proto__, is refused).
  app.on(
    "POST",
    "/execute",
    bodyLimit({
      maxSize: MAX_BODY_BYTES,
      onError: () => {
        throw new GatewayError("too_large", "body_too_large", `request body exceeds ${MAX_BODY_BYTES} bytes`);
      },
    }),
    async (c, next) => {
      intake.take(c.get("agent"));
      parseExecuteBody(await readJson(c));
      await next();
    },
  );

  app.openAPIRegistry.registerComponent("securitySchemes", "agentToken", {
    type: "http",
    scheme: "bearer",
    description: "required when AGENT_TOKENS is configured",
  });
  app.doc31("/openapi.json", OPENAPI_INFO);

  app.openapi(healthRoute, async (c) => {
    const sandbox = await deps.runnerHealth();
    const runner = sandbox !== undefined;
    return c.json<z.input<typeof HealthDocument>, 200 | 503>(
      {
        status: runner ? "ok" : "degraded",
        telegram_configured: deps.telegramConfigured,
        runner_reachable: runner,
        ...(sandbox && {
          isolation: sandbox.isolation,
          egress: sandbox.egress,
          egress_private_allowed: sandbox.egressPrivateAllowed,
          ...(sandbox.secrets && {
            secrets: sandbox.secrets.map((b) => ({
              name: b.name,
              mode: b.mode,
              hosts: b.hosts,
              places: b.places,
              skill_sees: b.mode === "placeholder" ? ("a placeholder" as const) : ("the real value" as const),
            })),
          }),
          warnings: sandboxWarnings(sandbox),
          ...(sandbox.signingKey && { runner_signing_key: sandbox.signingKey }),
          ...((sandbox.signingKeySource === "dstack" || sandbox.signingKeySource === "local") && {
            runner_signing_key_source: sandbox.signingKeySource,
          }),
        }),
        ...(deps.gatewayKey && { gateway_signing_key: deps.gatewayKey }),
        ...(deps.telegramState && { telegram: deps.telegramState() }),
        timestamp: Date.now(),
      },
      runner ? 200 : 503,
    );
  });

  app.openapi(submitRoute, async (c) => {
    const { request, outcome } = await intake.submit(c.get("agent"), c.req.valid("json"), c.req.valid("header")["idempotency-key"]);
    if (outcome === "replayed") c.header("Idempotent-Replayed", "true");
    return accepted(c, request, outcome === "merged");
  });

  // ?wait=<seconds> (at most 60): answer as soon as the request reaches a final state, or at the
  // deadline with its current state. Without it, answer at once (upstream behaviour).
  /** The request named in the path, if this agent may see it (with tokens: its own only). */
  const visible = (c: Context<{ Variables: AgentVariables }>): ExecRequest => {
    const id = c.req.param("id") ?? "";
    const request = deps.store.get(id);
    if (!request || (deps.agents?.required && request.agent !== c.get("agent"))) {
      throw new GatewayError("not_found", "not_found", "Request not found");
    }
    return request;
  };

  const waiters = new WaiterLimits(deps.waiters ?? { total: 256, perAgent: 32 });
  const enterWaiter = (agent: string | undefined) => {
    const release = waiters.enter(agent);
    if (!release)
      throw new GatewayError("limited", "too_many_waiters", "too many open waits and event streams; close some or poll without ?wait");
    return release;
  };

  app.openapi(statusRoute, async (c) => {
    let request = visible(c);
    const id = request.id;
    const { wait } = c.req.valid("query");
    if (wait !== undefined && !FINAL_STATUSES.has(request.status)) {
      const deadline = Date.now() + Math.min(Number(wait), MAX_WAIT_SECONDS) * 1000;
      // The wait ends when the client goes away: a dropped long-poll holds nothing.
      const signal = c.req.raw.signal;
      const release = enterWaiter(c.get("agent"));
      try {
        while (!FINAL_STATUSES.has(request.status) && Date.now() < deadline && !signal.aborted) {
          await deps.store.waitForChange(id, deadline - Date.now(), signal);
          request = deps.store.get(id)!;
        }
      } finally {
        release();
      }
    }
    return c.json(statusView(request), 200);
  });

  // Server-sent events: the current status at once, then one `status` event per transition, until
  // a final status; a comment every 15 s keeps proxies from closing the stream.
  app.openapi(eventsRoute, (c) => {
    const first = visible(c);
    const release = enterWaiter(c.get("agent"));
    return streamSSE(c, async (stream) => {
      const queue: ExecRequest[] = [];
      let wake: (() => void) | undefined;
      const unsubscribe = deps.store.onChange(({ request: next }) => {
        if (next.id !== first.id) return;
        queue.push(next);
        wake?.();
      });
      stream.onAbort(() => wake?.());
      try {
        let last = deps.store.get(first.id)!; // read after subscribing: no transition can slip by
        await stream.writeSSE({ event: "status", data: JSON.stringify(statusView(last)) });
        while (!FINAL_STATUSES.has(last.status) && !stream.aborted) {
          if (queue.length === 0) {
            const timedOut = await new Promise<boolean>((resolve) => {
              const t = setTimeout(() => resolve(true), 15_000);
              wake = () => {
                clearTimeout(t);
                resolve(false);
              };
            });
            if (timedOut) await stream.write(": keep-alive\n\n");
          }
          for (const next of queue.splice(0)) {
            if (next.status === last.status) continue; // e.g. an output purge: not a transition
            last = next;
            await stream.writeSSE({ event: "status", data: JSON.stringify(statusView(next)) });
          }
        }
      } finally {
        unsubscribe();
        release();
      }
    });
  });

  return jsonErrors(app, deps.logger);
}

/**
 * A route's validation failed: the same refusals, with the same codes, as before the routes had
 * schemas. A malformed id is not found (like an unknown one); a body is judged by parseExecuteBody
 * (its error names the field).
 */
// biome-ignore lint/suspicious/noExplicitAny: one hook for every route's validation target
const refusal: Hook<any, any, any, any> = (result) => {
  if (result.success) return;
  if (result.target === "param") throw new GatewayError("not_found", "not_found", "Request not found");
  if (result.target === "query") throw new GatewayError("invalid", "invalid_wait", "wait must be a number of seconds (0..60)");
  if (result.target === "header")
    throw new GatewayError("invalid", "invalid_idempotency_key", "Idempotency-Key must be 1-128 visible ASCII characters");
  const issue = result.error.issues[0];
  throw new GatewayError("invalid", "invalid_body", `${issue?.path.join(".") || "body"}: ${issue?.message ?? "invalid"}`);
};

/** The POST /execute answer (upstream's fields, plus ours). */
function accepted(c: Context, r: ExecRequest, merged: boolean) {
  return c.json<z.input<typeof AcceptedDocument>, 200>(
    {
      request_id: r.id,
      status: r.status,
      message: merged
        ? "Awaiting approval (identical to a pending request)"
        : r.status === "pending"
          ? "Awaiting approval"
          : `Request is ${r.status}`,
      code_hash: r.codeSha256,
      expires_at: r.expiresAt,
      ...(merged && { merged: true }),
    },
    200,
  );
}

/** The HTTP part of intake: application/json, parsed; its shape is the use case's to judge. */
async function readJson(c: Context): Promise<unknown> {
  // application/json only (any charset parameter): a browser can send text/plain or a form to any
  // address without a preflight, never application/json.
  const type = (c.req.header("content-type") ?? "").split(";")[0]!.trim().toLowerCase();
  if (type !== "application/json") {
    throw new GatewayError("unsupported", "unsupported_media_type", "the body must be JSON sent as Content-Type: application/json");
  }
  let raw: unknown;
  try {
    raw = await c.req.json();
  } catch {
    throw new GatewayError("invalid", "invalid_json", "request body must be JSON");
  }
  return raw;
}

/** What an operator reading /health must know about the sandbox the runner reported, in words. */
function sandboxWarnings(sandbox: { isolation: string; egress: string; secrets?: Array<{ name: string; mode: string }> }): string[] {
  const warnings: string[] = [];
  if (sandbox.isolation === "shared-uid" && (sandbox.secrets?.length ?? 0) > 0) {
    warnings.push(
      "isolation shared-uid: skills run as the runner's user and can read the runner's files, the secrets file included " +
        "(placeholders protect only the environment); run the runner as root for per-run uids",
    );
  }
  if (sandbox.egress === "deno-only") {
    warnings.push(
      "egress deno-only: Deno's --allow-net/--deny-net alone; names that resolve to internal addresses are not stopped " +
        "outside Deno, and raw sockets to a granted host bypass the placeholder proxy",
    );
  }
  for (const s of sandbox.secrets ?? []) {
    if (s.mode !== "placeholder") warnings.push(`${s.name} is bound env: a skill granted it holds the real value`);
  }
  return warnings;
}
