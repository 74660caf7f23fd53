import { Hono, type Context } from "hono";
import { bodyLimit } from "hono/body-limit";
import { HTTPException } from "hono/http-exception";
import { streamSSE } from "hono/streaming";
import { checkArgName, LIMITS, PolicyError, REQUEST_ID_PATTERN } from "@oauth3/shared";
import type { Logger } from "pino";
import type { ApprovalService } from "./approvals.js";
import { ApiError } from "./errors.js";
import { browserGuard, defaultBrowserGuard, type BrowserGuardOptions } from "./browser-guard.js";
import { ExecuteBody, prepareRequest, statusView, type IntakeDeps } from "./intake.js";
import { agentAuth, createAgentRegistry, type AgentRegistry, type AgentVariables } from "./agents.js";
import { admission, RateLimiter, WaiterLimits } from "./intake-limits.js";
import { IdempotencyKeys } from "./idempotency.js";
import { openApiDocument } from "./openapi.js";
import type { AcceptedDocument, HealthDocument } from "./api-schemas.js";
import type { z } from "zod";
import { FINAL_STATUSES, type ExecRequest, type RequestStore } from "./store.js";

export interface AgentAppDeps {
  store: RequestStore;
  approvals: ApprovalService;
  intake: IntakeDeps;
  logger: Logger;
  telegramConfigured: boolean;
  /** The runner's sandbox modes, or undefined when it is unreachable. */
  runnerHealth: () => Promise<{ isolation: string; egress: string; egressPrivateAllowed: string[]; signingKey?: string; signingKeySource?: string } | undefined>;
  /** The gateway's public key (audit checkpoints, attestation countersignature), published here. */
  gatewayKey?: string;
  /** Telegram polling state, when a bot is configured. */
  telegramState?: () => string;
  limits: { maxPending: number; submissionsPerMinute: number };
  /** Open long-polls and event streams, in total and per agent (default 256 and 32). */
  waiters?: { total: number; perAgent: number };
  agents?: AgentRegistry;
  /** Who may call: host names served, web origins allowed (browser-guard.ts). Default: the built-in names. */
  browserGuard?: BrowserGuardOptions;
}

/** A data: URL of the largest allowed skill, percent-encoded, plus the rest of the body. */
const MAX_BODY_BYTES = LIMITS.maxCodeBytes * 3 + 128 * 1024;
const MAX_WAIT_SECONDS = 60;

/**
 * The agent API (upstream-compatible). The agent is untrusted: this app can submit and read, never
 * decide. Decisions come only from approval channels (operator socket, Telegram).
 */
export function createAgentApp(deps: AgentAppDeps): Hono<{ Variables: AgentVariables }> {
  const app = new Hono<{ Variables: AgentVariables }>();
  const idempotency = new IdempotencyKeys(deps.store);
  // Rate limits per agent (one shared bucket for unidentified agents when no tokens are configured).
  const submissions = new Map<string, RateLimiter>();
  const limiterFor = (agent: string | undefined) => {
    const key = agent ?? "";
    let limiter = submissions.get(key);
    if (!limiter) submissions.set(key, (limiter = new RateLimiter(deps.limits.submissionsPerMinute)));
    return limiter;
  };
  app.use("*", browserGuard(deps.browserGuard ?? defaultBrowserGuard(), (f) => deps.logger.warn(f, "refused a request from a web page")));
  app.use("/execute", agentAuth(deps.agents ?? createAgentRegistry(new Map())));
  app.use("/execute/*", agentAuth(deps.agents ?? createAgentRegistry(new Map())));

  const openapi = openApiDocument();
  app.get("/openapi.json", (c) => c.json(openapi));

  app.get("/health", async (c) => {
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
          ...(sandbox.signingKey && { runner_signing_key: sandbox.signingKey }),
          ...((sandbox.signingKeySource === "dstack" || sandbox.signingKeySource === "local") && { runner_signing_key_source: sandbox.signingKeySource }),
        }),
        ...(deps.gatewayKey && { gateway_signing_key: deps.gatewayKey }),
        ...(deps.telegramState && { telegram: deps.telegramState() }),
        timestamp: Date.now(),
      },
      runner ? 200 : 503,
    );
  });

  app.post(
    "/execute",
    bodyLimit({
      maxSize: MAX_BODY_BYTES,
      onError: () => {
        throw new ApiError(413, "body_too_large", `request body exceeds ${MAX_BODY_BYTES} bytes`);
      },
    }),
    async (c) => {
      // Cheap refusals first: no fetch, no card, for an agent that floods.
      const agent = c.get("agent");
      if (!limiterFor(agent).take()) {
        throw new ApiError(429, "rate_limited", `more than ${deps.limits.submissionsPerMinute} submissions in a minute`);
      }
      const body = await readBody(c);
      const submitOnce = async () => {
        const prepared = await prepareRequest(body, deps.intake);
        const request = agent === undefined ? prepared.request : { ...prepared.request, agent };
        // Merge and cap are judged in the same transaction as the write (durable before we answer).
        const outcome = await deps.store.admit(request, prepared.code, admission(request, deps.limits.maxPending));
        if (outcome === "full") {
          throw new ApiError(429, "too_many_pending", `${deps.limits.maxPending} requests already await a decision`);
        }
        if (outcome !== "created") return { requestId: outcome.twin.id, response: accepted(c, outcome.twin, true) };
        deps.logger.info(
          { requestId: request.id, skillId: request.skillId, agent, codeSha256: request.codeSha256 },
          "request received",
        );
        // Not awaited: an agent's submission never waits on Telegram (a 429 can mean minutes). The
        // request is already durable; a card that fails after retries is logged, and the request
        // stays decidable with `oauth3` until it expires.
        void deps.approvals.announce(request).catch((err: unknown) =>
          deps.logger.error({ requestId: request.id, err: String(err) }, "announcing the request failed"),
        );
        return { requestId: request.id, response: accepted(c, request, false) };
      };
      const key = c.req.header("idempotency-key");
      if (key === undefined) return (await submitOnce()).response;
      const result = await idempotency.once(agent, key, body, submitOnce);
      if (result.response) return result.response;
      c.header("Idempotent-Replayed", "true");
      return accepted(c, deps.store.get(result.requestId)!, false);
    },
  );

  // ?wait=<seconds> (at most 60): answer as soon as the request reaches a final state, or at the
  // deadline with its current state. Without it, answer at once (upstream behaviour).
  /** The request named in the path, if this agent may see it (with tokens: its own only). */
  const visible = (c: Context<{ Variables: AgentVariables }>): ExecRequest => {
    const id = c.req.param("id") ?? "";
    const request = REQUEST_ID_PATTERN.test(id) ? deps.store.get(id) : undefined;
    if (!request || (deps.agents?.required && request.agent !== c.get("agent"))) {
      throw new ApiError(404, "not_found", "Request not found");
    }
    return request;
  };

  const waiters = new WaiterLimits(deps.waiters ?? { total: 256, perAgent: 32 });
  const enterWaiter = (agent: string | undefined) => {
    const release = waiters.enter(agent);
    if (!release) throw new ApiError(429, "too_many_waiters", "too many open waits and event streams; close some or poll without ?wait");
    return release;
  };

  app.get("/execute/:id/status", async (c) => {
    let request = visible(c);
    const id = request.id;
    const wait = c.req.query("wait");
    if (wait !== undefined && !/^\d{1,3}(\.\d+)?$/.test(wait)) {
      throw new ApiError(400, "invalid_wait", "wait must be a number of seconds (0..60)");
    }
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
    return c.json(statusView(request));
  });

  // Server-sent events: the current status at once, then one `status` event per transition, until
  // a final status; a comment every 15 s keeps proxies from closing the stream.
  app.get("/execute/:id/events", (c) => {
    const first = visible(c);
    const release = enterWaiter(c.get("agent"));
    return streamSSE(c, async (stream) => {
      const queue: ExecRequest[] = [];
      let wake: (() => void) | undefined;
      const onChange = (id: string, next: ExecRequest) => {
        if (id !== first.id) return;
        queue.push(next);
        wake?.();
      };
      deps.store.changes.on("change", onChange);
      stream.onAbort(() => wake?.());
      try {
        let last = deps.store.get(first.id)!; // read after subscribing: no transition can slip by
        await stream.writeSSE({ event: "status", data: JSON.stringify(statusView(last)) });
        while (!FINAL_STATUSES.has(last.status) && !stream.aborted) {
          if (queue.length === 0) {
            const timedOut = await new Promise<boolean>((resolve) => {
              const t = setTimeout(() => resolve(true), 15_000);
              wake = () => { clearTimeout(t); resolve(false); };
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
        deps.store.changes.off("change", onChange);
        release();
      }
    });
  });

  app.notFound(() => {
    throw new ApiError(404, "no_route", "no such route");
  });
  app.onError((err, c) => errorResponse(err, c, deps.logger));
  return app;
}

/** The POST /execute answer (upstream's fields, plus ours). */
function accepted(c: Context, r: ExecRequest, merged: boolean): Response {
  return c.json<z.input<typeof AcceptedDocument>>({
    request_id: r.id,
    status: r.status,
    message: merged ? "Awaiting approval (identical to a pending request)" : r.status === "pending" ? "Awaiting approval" : `Request is ${r.status}`,
    code_hash: r.codeSha256,
    expires_at: r.expiresAt,
    ...(merged && { merged: true }),
  });
}

async function readBody(c: Context): Promise<ExecuteBody> {
  // application/json only (any charset parameter): a browser can send text/plain or a form to any
  // address without a preflight, never application/json.
  const type = (c.req.header("content-type") ?? "").split(";")[0]!.trim().toLowerCase();
  if (type !== "application/json") {
    throw new ApiError(415, "unsupported_media_type", "the body must be JSON sent as Content-Type: application/json");
  }
  let raw: unknown;
  try {
    raw = await c.req.json();
  } catch {
    throw new ApiError(400, "invalid_json", "request body must be JSON");
  }
  if (typeof raw === "object" && raw !== null) {
    const r = raw as Record<string, unknown>;
    if (!r.skill_id || !r.skill_url) {
      throw new ApiError(400, "missing_field", "Missing skill_id or skill_url");
    }
    refuseLoneSurrogates(raw, "body");
    // Every arg name is checked here, before zod builds an object: a key such as __proto__ would
    // otherwise vanish silently instead of being refused.
    if (typeof r.args === "object" && r.args !== null && !Array.isArray(r.args)) {
      for (const name of Object.keys(r.args)) {
        try {
          checkArgName(name);
        } catch (err) {
          if (err instanceof PolicyError) throw new ApiError(400, err.code, err.message);
          throw err;
        }
      }
    }
  }
  const parsed = ExecuteBody.safeParse(raw);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    const where = issue?.path.join(".") || "body";
    throw new ApiError(400, "invalid_body", `${where}: ${issue?.message ?? "invalid"}`);
  }
  return parsed.data;
}

/**
 * A lone UTF-16 surrogate (JSON's "\ud800") has no UTF-8 form: what is stored, shown and signed
 * would differ. Refused anywhere in the body, keys included.
 */
const LONE_SURROGATE = /\p{Cs}/u; // with the u flag a valid pair is one code point, never Cs
function refuseLoneSurrogates(value: unknown, path: string): void {
  if (typeof value === "string") {
    if (LONE_SURROGATE.test(value)) throw new ApiError(400, "invalid_body", `${path}: contains a lone surrogate (not valid Unicode)`);
  } else if (Array.isArray(value)) {
    value.forEach((v, i) => refuseLoneSurrogates(v, `${path}[${i}]`));
  } else if (typeof value === "object" && value !== null) {
    for (const [k, v] of Object.entries(value)) {
      if (LONE_SURROGATE.test(k)) throw new ApiError(400, "invalid_body", `${path}: a key contains a lone surrogate (not valid Unicode)`);
      refuseLoneSurrogates(v, `${path}.${k}`);
    }
  }
}

/** The one place errors become responses: `{ error, code }`, never a stack trace. */
export function errorResponse(err: Error, c: Context, logger: Logger): Response {
  if (err instanceof ApiError) return c.json({ error: err.message, code: err.code }, err.status);
  if (err instanceof HTTPException) {
    return c.json({ error: err.message || "bad request", code: "http_error" }, err.status);
  }
  logger.error({ err: `${err.name}: ${err.message}`, path: c.req.path }, "unhandled error");
  return c.json({ error: "internal error", code: "internal" }, 500);
}
