import type { Server } from "node:http";
import { Hono } from "hono";
import { serveUnixSocket } from "../http/server.js";
import type { Logger } from "pino";
import type { Registry } from "prom-client";
import { jsonErrors } from "../http/errors.js";
import type { ApprovalService } from "../approval/approvals.js";
import { auditAuth, type AgentRegistry } from "../http/agent-auth.js";
import { approvalStatement } from "@oauth3/shared";
import { GatewayError } from "../errors.js";
import { browserGuard, defaultBrowserGuard } from "../http/browser-guard.js";
import { statusView } from "../http/status-view.js";
import type { ExecRequest, RequestStore } from "../store/store.js";
import type { SigningKey } from "@oauth3/shared/signing-key";
import type { selfAudit } from "../audit/self-audit.js";

export interface OperatorAppDeps {
  store: RequestStore;
  approvals: ApprovalService;
  logger: Logger;
  metrics?: Registry;
  /** Signs audit checkpoints and countersigns attestation statements. */
  gatewayKey?: SigningKey;
  attestation?: (nonce: string | undefined) => Promise<Record<string, unknown>>;
  selfAudit?: () => Promise<ReturnType<typeof selfAudit>>;
  /** The runner's sandbox modes, shown in each request's approval statement. */
  sandbox?: () => Promise<{ isolation: string; egress: string } | undefined>;
}

/**
 * The operator API: list, inspect (with the exact code), approve, deny. Served only on a Unix socket
 * in a 0700 directory (socket 0600): only the gateway's own user, on the machine, can decide. It is
 * never mounted on the agent's TCP port. Metrics (Prometheus text) are served here too.
 */
export function createOperatorApp(deps: OperatorAppDeps): Hono {
  const app = new Hono();
  const find = (id: string): ExecRequest => {
    const request = deps.store.get(id);
    if (!request) throw new GatewayError("not_found", "not_found", "Request not found");
    return request;
  };
  const sandbox = async () => {
    const s = await deps.sandbox?.();
    return s && { isolation: s.isolation, egress: s.egress };
  };
  // Each request carries the approval statement every human-facing surface renders (the same one
  // the Telegram card is made of), with the runner's sandbox as it reports it now.
  const detail = (r: ExecRequest, box: { isolation: string; egress: string } | undefined) => ({
    ...statusView(r),
    skill_name: r.skillName,
    description: r.description,
    source: r.source,
    args: r.args,
    decision_channel: r.decisionChannel,
    statement: approvalStatement(r, deps.store.getCode(r.id)?.toString("utf8") ?? "", box),
  });

  app.get("/requests", async (c) => {
    const status = c.req.query("status");
    const rows = deps.store.list((r) => !status || r.status === status);
    rows.sort((a, b) => a.createdAt - b.createdAt);
    const box = await sandbox();
    return c.json({ requests: rows.map((r) => detail(r, box)) });
  });
  app.get("/metrics", async (c) => {
    if (!deps.metrics) throw new GatewayError("not_found", "no_route", "metrics are not enabled");
    return c.text(await deps.metrics.metrics(), 200, { "content-type": deps.metrics.contentType });
  });

  app.route("/", createReadOnlyOperatorApp(deps));

  app.get("/requests/:id", async (c) => {
    const request = find(c.req.param("id"));
    const code = deps.store.getCode(request.id);
    return c.json({ ...detail(request, await sandbox()), code: code?.toString("utf8") ?? null });
  });
  for (const [verb, approve] of [
    ["approve", true],
    ["deny", false],
  ] as const) {
    app.post(`/requests/:id/${verb}`, async (c) => {
      find(c.req.param("id"));
      const result = await deps.approvals.decide(c.req.param("id"), {
        approve,
        channel: "operator",
        decidedBy: "operator:local",
      });
      if (result.outcome === "approved" || result.outcome === "denied") {
        return c.json({ outcome: result.outcome, request: detail(result.request, await sandbox()) });
      }
      if (result.outcome === "not_found") throw new GatewayError("not_found", "not_found", "Request not found");
      throw new GatewayError("conflict", result.outcome, `request is ${result.request.status}; nothing was changed`);
    });
  }
  return jsonErrors(app, deps.logger);
}

/**
 * The operator routes that only read: the audit chain with a signed checkpoint, attestation
 * evidence, and the split self-audit. Mounted on the operator socket, and, when AUDIT_TOKENS is
 * set, under /operator on AUDIT_PORT for auditors who cannot reach the machine (a Phala CVM).
 */
export function createReadOnlyOperatorApp(deps: Pick<OperatorAppDeps, "store" | "gatewayKey" | "attestation" | "selfAudit">): Hono {
  const app = new Hono();
  // The audit chain, paged: GET /audit?after=<seq>&limit=<n> (n <= 1000).
  app.get("/audit", (c) => {
    const after = Number(c.req.query("after") ?? 0);
    const limit = Math.min(Number(c.req.query("limit") ?? 500), 1000);
    if (!Number.isInteger(after) || after < 0 || !Number.isInteger(limit) || limit < 1) {
      throw new GatewayError("invalid", "invalid_page", "after and limit must be non-negative integers");
    }
    const events = deps.store.auditPage(after, limit);
    const head = deps.store.auditHead();
    // The gateway signs the head it reports: an operator who keeps checkpoints can later prove a
    // truncated or rewritten log (the gateway's key, published by /attestation, made this claim).
    const checkpoint = deps.gatewayKey?.sign({
      v: 1,
      kind: "oauth3-proxy audit checkpoint",
      seq: head.seq,
      hash: head.hash,
      at: Date.now(),
    });
    return c.json({
      events,
      next: events.length === limit ? events.at(-1)!.seq : null,
      head,
      ...(checkpoint && {
        checkpoint: {
          payload_json: checkpoint.payloadJson,
          signature: checkpoint.signature.toString("base64"),
          public_key: deps.gatewayKey!.publicKeyHex,
        },
      }),
    });
  });
  app.get("/attestation", async (c) => {
    if (!deps.attestation) throw new GatewayError("not_found", "no_route", "attestation is not enabled");
    return c.json(await deps.attestation(c.req.query("nonce")));
  });
  // The operator's /health: the split self-audit (ids, env names, sockets, modes, Deno flags).
  app.get("/health", async (c) => {
    if (!deps.selfAudit) throw new GatewayError("not_found", "no_route", "self-audit is not enabled");
    const audit = await deps.selfAudit();
    return c.json({ status: audit.ok ? "ok" : "split_violation", self_audit: audit });
  });

  return app;
}

/**
 * The remote audit listener (AUDIT_PORT, only with AUDIT_TOKENS): the read-only routes under
 * /operator, each behind an audit bearer token. Its own port, so the agent port never serves them
 * and an operator can publish this one alone.
 */
export function createRemoteAuditApp(readOnly: Hono, registry: AgentRegistry, logger: Logger, guard = defaultBrowserGuard()): Hono {
  const app = new Hono();
  app.use(
    "*",
    browserGuard(guard, (f) => logger.warn(f, "refused a request from a web page")),
  );
  app.use("/operator/*", auditAuth(registry));
  app.route("/operator", readOnly);
  return jsonErrors(app, logger);
}

/** The operator API on its Unix socket (0600 in a 0700 directory). */
export function startOperatorServer(app: Hono, socketPath: string): Promise<Server> {
  return serveUnixSocket(app, socketPath);
}
