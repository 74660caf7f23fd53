import { join } from "node:path";
import { after } from "node:test";
import { createClient, createRouterTransport } from "@connectrpc/connect";
import { VaultRunnerService } from "@oauth3/proto/runner/v1";
import { open, type Database, type RootDatabase } from "lmdb";
import { pino } from "pino";
import type { AuditEvent } from "@oauth3/shared";
import type { AgentRegistry } from "../../gateway/src/http/agent-auth.ts";
import { createAgentApp } from "../../gateway/src/http/agent-api.ts";
import { ApprovalService } from "../../gateway/src/approval/approvals.ts";
import { ChangeFeed, type Follower } from "../../gateway/src/store/change-feed.ts";
import { Dispatcher } from "../../gateway/src/runs/dispatcher.ts";
import { heldSecrets } from "../../gateway/src/runs/runner-client.ts";
import { parseBindingLines } from "../../vault-runner/src/bindings.ts";
import { SecretStore } from "../../vault-runner/src/secrets.ts";
import { GrantStore } from "../../gateway/src/approval/grants.ts";
import { createOperatorApp } from "../../gateway/src/operator/operator-api.ts";
import type { RunnerClient } from "../../gateway/src/runs/runner-client.ts";
import { RequestStore, type ExecRequest, type RequestChange } from "../../gateway/src/store/store.ts";
import { RecordingExecutor, routesFor, runnerDeps, TEST_SECRETS } from "./runner-fixture.ts";
import { tempDir } from "./tmp.ts";

/** What an approver would have been shown: each new pending request, then every later change. */
export class RecordingChannel implements Follower {
  readonly name = "recording";
  readonly announced: ExecRequest[] = [];
  readonly updates: ExecRequest[] = [];
  async handle({ request, previous }: RequestChange) {
    if (request.status === "pending" && previous === undefined) this.announced.push(request);
    else this.updates.push(request);
  }
}

export interface GatewayFixtureOptions {
  allowPrivate?: string[];
  now?: () => number;
  ttlMs?: number;
  dbPath?: string;
  executor?: RecordingExecutor;
  maxPending?: number;
  submissionsPerMinute?: number;
  agents?: AgentRegistry;
  /** More durable followers besides the recording one (e.g. the agent notifier). */
  extraFollowers?: Follower[];
  /** false: approved requests are not run by the fixture's dispatcher (a test runs its own). */
  dispatch?: boolean;
  /** Open long-polls and event streams allowed (app default otherwise). */
  waiters?: { total: number; perAgent: number };
  /** Active grants auto-approve (as with Telegram configured). */
  grants?: boolean;
  /** The runner's bindings of FOO and BAR (RUNNER_BINDINGS lines); default: both "env". */
  bindings?: string;
}

function runnerOverrides(options: GatewayFixtureOptions) {
  if (!options.bindings) return {};
  const bindings = new Map(parseBindingLines(options.bindings, "fixture").map((b) => [b.name, b]));
  return { secrets: new SecretStore(new Map(Object.entries(TEST_SECRETS)), bindings) };
}

/** The gateway's parts wired as in main.ts, over a real LMDB and the real runner service in memory. */
export function gatewayFixture(options: GatewayFixtureOptions = {}) {
  const dbPath = options.dbPath ?? join(tempDir("oauth3-gw-"), "db");
  // The store's LMDB, through lmdb-js's own open: a test can make audit writes fail (as a full disk
  // would) and can reach the file's databases directly (as someone who took over the gateway could).
  const faults: { auditWrite?: (event: AuditEvent) => void } = {};
  let root: RootDatabase | undefined;
  const store = RequestStore.open(dbPath, ((options: Parameters<typeof open>[0]) => {
    root = open(options);
    const openDB = root.openDB.bind(root);
    root.openDB = ((dbOptions: { name: string }) => {
      const db = openDB(dbOptions as never) as Database;
      if (dbOptions.name !== "audit") return db;
      return new Proxy(db, {
        get(target, prop, receiver) {
          if (prop === "put") {
            return (key: number, value: AuditEvent) => {
              faults.auditWrite?.(value);
              return target.put(key, value);
            };
          }
          const v = Reflect.get(target, prop, receiver);
          return typeof v === "function" ? v.bind(target) : v;
        },
      });
    }) as typeof root.openDB;
    return root;
  }) as typeof open);
  /** The audit chain's database itself, past the store: what a compromised gateway could rewrite. */
  const rawAuditDb = () => root!.openDB<AuditEvent, number>({ name: "audit", keyEncoding: "uint32" });
  after(() => store.close());
  const executor = options.executor ?? new RecordingExecutor();
  const runner: RunnerClient = createClient(
    VaultRunnerService,
    createRouterTransport(routesFor(runnerDeps(executor, runnerOverrides(options)))),
  );
  const logger = pino({ level: "silent" });
  const channel = new RecordingChannel();
  const dispatcher = new Dispatcher({ store, runner, logger, retryDelaysMs: [] });
  if (options.dispatch !== false) dispatcher.start();
  const grants = options.grants ? new GrantStore(store) : undefined;
  const approvals = new ApprovalService({ store, logger, ...(options.now && { now: options.now }), ...(grants && { grants }) });
  const feed = new ChangeFeed(store, logger);
  feed.follow(channel);
  for (const follower of options.extraFollowers ?? []) feed.follow(follower, { durable: true });
  const app = createAgentApp({
    store,
    approvals,
    logger,
    telegramConfigured: false,
    runnerHealth: async () => {
      const h = await runner.getHealth({});
      return { isolation: h.isolation, egress: h.egress, egressPrivateAllowed: h.egressPrivateAllowed, signingKey: h.signingPublicKey };
    },
    limits: { maxPending: options.maxPending ?? 1000, submissionsPerMinute: options.submissionsPerMinute ?? 10_000 },
    ...(options.agents && { agents: options.agents }),
    ...(options.waiters && { waiters: options.waiters }),
    intake: {
      fetch: { timeoutMs: 3000, maxBytes: 256 * 1024, allowPrivate: new Set(options.allowPrivate ?? []) },
      maxTimeoutSeconds: 60,
      approvalTtlMs: options.ttlMs ?? 600_000,
      secretNames: async () => heldSecrets(await runner.listSecretNames({})),
      ...(options.now && { now: options.now }),
    },
  });
  const operator = createOperatorApp({ store, approvals, logger });
  const post = (body: unknown, token?: string) =>
    app.request("/execute", {
      method: "POST",
      headers: { "content-type": "application/json", ...(token && { authorization: `Bearer ${token}` }) },
      body: typeof body === "string" ? body : JSON.stringify(body),
    });
  /** Listeners the wiring itself holds (the dispatcher, the feed): what a test sees when nothing is left open. */
  const wiredListeners = store.changeListenerCount;
  return {
    store,
    executor,
    runner,
    dispatcher,
    approvals,
    feed,
    app,
    operator,
    channel,
    post,
    dbPath,
    grants,
    wiredListeners,
    faults,
    rawAuditDb,
  };
}

export function dataUrl(code: string): string {
  return `data:text/typescript,${encodeURIComponent(code)}`;
}

/** Waits until `check` returns a value, at most `ms`. */
export async function eventually<T>(check: () => T | undefined, ms = 10_000): Promise<T> {
  const start = Date.now();
  for (;;) {
    const value = check();
    if (value !== undefined) return value;
    if (Date.now() - start > ms) throw new Error("condition not met in time");
    await new Promise((r) => setTimeout(r, 20));
  }
}
