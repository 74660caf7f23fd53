import { pino } from "pino";
import { SigningKey } from "@oauth3/shared/signing-key";
import { AgentNotifier } from "./notify/agent-notifier.js";
import { createAgentRegistry } from "./http/agent-auth.js";
import { createAgentApp } from "./http/agent-api.js";
import { ApprovalService } from "./approval/approvals.js";
import { attestation, gatewayPolicy } from "./audit/attestation.js";
import { defaultBrowserGuard } from "./http/browser-guard.js";
import { ChangeFeed } from "./store/change-feed.js";
import { loadGatewayConfig } from "./config.js";
import { resolveDbLocation } from "./store/db-location.js";
import { Dispatcher } from "./runs/dispatcher.js";
import { GrantStore } from "./approval/grants.js";
import { serveTcp } from "./http/server.js";
import { createMetrics } from "./operator/metrics.js";
import { OperatorLog } from "./operator/operator-log.js";
import { createOperatorApp, createReadOnlyOperatorApp, createRemoteAuditApp, startOperatorServer } from "./operator/operator-api.js";
import { purgeExpiredOutput } from "./store/retention.js";
import { createRunnerClient, RunnerQueries } from "./runs/runner-client.js";
import { gatewaySelfAudit } from "./audit/self-audit.js";
import { exitOnUnhandledRejectionExceptLmdbCommits, RequestStore } from "./store/store.js";
import { createTelegram } from "./telegram/index.js";

/** Composition root: the only place that reads process.env. Wiring only: each part owns its policy. */
async function main(): Promise<void> {
  const config = loadGatewayConfig(process.env);
  const logger = pino({
    name: "gateway",
    level: config.logLevel,
    redact: { paths: ["token", "*.token", "telegram.token", "agentNotify.token"], censor: "[redacted]" },
  });
  // Everything the gateway writes is its own: requests, code, results, its key, its sockets.
  process.umask(0o077);
  const dbLocation = resolveDbLocation(config.dbPath);
  const store = RequestStore.open(dbLocation);
  // The gateway's own key (checkpoints, attestation countersignature), 0600 beside its LMDB.
  // Never from dstack: GetKey is per app, so a gateway with the dstack socket could derive the
  // runner's receipt key too. Only the runner talks to dstack.
  const gatewayKey = SigningKey.loadOrCreate(dbLocation.signingKeyPath);
  const runnerClient = createRunnerClient(config.runnerSocket);
  const runner = new RunnerQueries(runnerClient, (names) => {
    logger.fatal({ names }, "the gateway's environment holds runner secrets: stopping");
    void shutdown("split-violation", 2);
  });
  const grants = new GrantStore(store);
  const approvals = new ApprovalService({ store, logger, grants });
  const dispatcher = new Dispatcher({ store, runner: runnerClient, logger });
  const feed = new ChangeFeed(store, logger);
  const telegram =
    config.telegram &&
    createTelegram(config.telegram, {
      store,
      approvals,
      grants,
      feed,
      grantTtlMs: config.grantTtlMs,
      host: config.host,
      logger,
      sandbox: () => runner.summary(),
    });

  // What the operator may read (socket; with AUDIT_TOKENS also /operator on the audit port).
  const readOnly = {
    store,
    gatewayKey,
    attestation: (nonce: string | undefined) =>
      attestation({ store, runner: runnerClient, gatewayKey, policy: gatewayPolicy(config) }, nonce),
    selfAudit: () => gatewaySelfAudit(runner, config.operatorSocket),
  };
  const guard = defaultBrowserGuard(config.allowedHosts, config.allowedOrigins);
  const agentApp = createAgentApp({
    store,
    approvals,
    logger,
    telegramConfigured: telegram !== undefined,
    intake: {
      fetch: config.fetch,
      maxTimeoutSeconds: config.maxTimeoutSeconds,
      approvalTtlMs: config.approvalTtlMs,
      secretNames: () => runner.secretNames(),
    },
    limits: { maxPending: config.maxPending, submissionsPerMinute: config.submissionsPerMinute },
    waiters: config.waiters,
    agents: createAgentRegistry(config.agentTokens),
    ...(telegram && { telegramState: telegram.state }),
    runnerHealth: () => runner.summary(),
    gatewayKey: gatewayKey.publicKeyHex,
    browserGuard: guard,
  });
  const agentServer = await serveTcp(agentApp, config.port, config.host, { maxConnections: config.maxConnections });
  const auditServer =
    config.auditTokens.size > 0
      ? await serveTcp(
          createRemoteAuditApp(createReadOnlyOperatorApp(readOnly), createAgentRegistry(config.auditTokens), logger, guard),
          config.auditPort,
          config.host,
        )
      : undefined;
  const operatorServer = await startOperatorServer(
    createOperatorApp({
      ...readOnly,
      approvals,
      logger,
      sandbox: () => runner.summary(),
      metrics: createMetrics(store, () => runner.health()),
    }),
    config.operatorSocket,
  );

  // What follows a change: the run, the operator's log line, the agent's wake-up, the cards.
  dispatcher.start();
  feed.follow(new OperatorLog(logger));
  if (config.agentNotify) feed.follow(new AgentNotifier({ ...config.agentNotify, logger }), { durable: true });
  await telegram?.start();
  // Start-up writes nothing it must have: on a full disk these log, and the sweep retries them.
  await dispatcher.recover();
  await approvals.expireDue();
  const sweeper = setInterval(() => {
    void dispatcher.markLeftOver();
    void approvals.expireDue();
  }, 5000);
  const purge = () =>
    purgeExpiredOutput(store, Date.now(), config.outputRetentionMs).catch((err: unknown) =>
      logger.error({ err: String(err) }, "output retention sweep failed"),
    );
  await purge();
  const purger = setInterval(() => void purge(), 10 * 60 * 1000);
  const address = agentServer.address();
  logger.info(
    {
      listen: typeof address === "object" && address ? `${address.address}:${address.port}` : address,
      operatorSocket: config.operatorSocket,
      runnerSocket: config.runnerSocket,
      db: `${config.dbPath} (${dbLocation.form})`,
      telegram: telegram !== undefined,
      remoteAudit: auditServer ? `${config.host}:${config.auditPort}` : null,
    },
    "gateway listening",
  );

  let stopping = false;
  async function shutdown(signal: string, exitCode = 0): Promise<void> {
    if (stopping) return;
    stopping = true;
    logger.info({ signal }, "gateway stopping");
    clearInterval(sweeper);
    clearInterval(purger);
    await telegram?.stop();
    auditServer?.close();
    agentServer.close();
    operatorServer.close();
    agentServer.closeAllConnections();
    await dispatcher.drain(5000);
    await feed.stop(2000);
    await store.close();
    process.exit(exitCode);
  }
  process.on("SIGTERM", () => void shutdown("SIGTERM"));
  process.on("SIGINT", () => void shutdown("SIGINT"));
}

exitOnUnhandledRejectionExceptLmdbCommits("gateway");

main().catch((err: unknown) => {
  process.stderr.write(`gateway: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
});
