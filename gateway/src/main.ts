import type { Server } from "node:http";
import { join } from "node:path";
import { processFacts, socketFacts } from "@oauth3/shared/process-report";
import { SigningKey } from "@oauth3/shared/signing-key";
import { attestation, gatewayPolicy } from "./attestation.js";
import { selfAudit } from "./self-audit.js";
import { createAdaptorServer } from "@hono/node-server";
import { Code, ConnectError } from "@connectrpc/connect";
import { pino } from "pino";
import { createAgentApp } from "./app.js";
import { defaultBrowserGuard } from "./browser-guard.js";
import type { Bot } from "grammy";
import { ApprovalService, LocalOperatorChannel, type ApprovalChannel } from "./approvals.js";
import { GrantStore } from "./grants.js";
import { createTelegramBot, installTelegramHandlers } from "./telegram/bot.js";
import { TelegramChannel } from "./telegram/channel.js";
import { TelegramPoller } from "./telegram/poller.js";
import { startWebhook } from "./telegram/webhook.js";
import { loadGatewayConfig } from "./config.js";
import { Dispatcher } from "./dispatcher.js";
import { AgentNotifier } from "./agent-notifier.js";
import { createAgentRegistry } from "./agents.js";
import { ApiError } from "./errors.js";
import { createMetrics } from "./metrics.js";
import { createOperatorApp, createReadOnlyOperatorApp, createRemoteAuditApp, startOperatorServer } from "./operator.js";
import { createRunnerClient } from "./runner-client.js";
import { purgeExpiredOutput } from "./retention.js";
import { resolveDbLocation } from "./db-location.js";
import { RequestStore } from "./store.js";

/** Composition root: the only place that reads process.env. */
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
  const runner = createRunnerClient(config.runnerSocket);
  const grants = new GrantStore(store);
  const channels: ApprovalChannel[] = [new LocalOperatorChannel(logger)];
  if (config.agentNotify) channels.push(new AgentNotifier({ ...config.agentNotify, logger }));
  const tg = config.telegram;
  const runnerHealth = async () => {
    try {
      const h = await runner.getHealth({}, { timeoutMs: 2000 });
      return {
        isolation: h.isolation, egress: h.egress, egressPrivateAllowed: h.egressPrivateAllowed,
        signingKey: h.signingPublicKey, signingKeySource: h.signingKeySource,
      };
    } catch {
      return undefined;
    }
  };
  let bot: Bot | undefined;
  let telegramChannel: TelegramChannel | undefined;
  if (tg) {
    // The client now; its handlers once the ApprovalService (which needs the channel) exists.
    bot = createTelegramBot(tg.token, tg.apiRoot);
    if (tg.chatId !== undefined) {
      telegramChannel = new TelegramChannel({
        api: bot.api, store, grants, chatId: tg.chatId, grantTtlMs: config.grantTtlMs, logger, sandbox: runnerHealth,
      });
      channels.push(telegramChannel);
    }
  }
  const dispatcher: Dispatcher = new Dispatcher({
    store,
    runner,
    logger,
    onFinished: (request): Promise<void> => approvals.notify(request, "update"),
  });
  const approvals: ApprovalService = new ApprovalService({ store, dispatcher, channels, logger, grants });
  let poller: TelegramPoller | undefined;
  if (tg) {
    installTelegramHandlers(bot!, {
      store, approvals, grants, channel: telegramChannel, chatId: tg.chatId,
      approverIds: tg.approverIds, grantTtlMs: config.grantTtlMs, logger,
    });
    if (!tg.webhook) poller = new TelegramPoller(bot!, store.subDb<number>("telegram_state"), logger);
    if (tg.chatId === undefined) {
      logger.warn("TELEGRAM_CHAT_ID is not set: the bot only answers /start and /id (send it /id to learn the chat id); approve with `npm run oauth3`");
    } else if (tg.approverIds.size === 0) {
      logger.warn("no Telegram approvers: TELEGRAM_CHAT_ID is a group, so set TELEGRAM_APPROVER_IDS; cards are shown but nobody can decide in Telegram");
    }
  }

  const secretNames = async (): Promise<ReadonlySet<string>> => {
    try {
      const names = new Set((await runner.listSecretNames({}, { timeoutMs: 5000 })).names);
      // A gateway that can see a secret's name in its own environment was given the runner's env.
      const leaked = Object.keys(process.env).filter((k) => names.has(k));
      if (leaked.length > 0) {
        logger.fatal({ names: leaked }, "the gateway's environment holds runner secrets: stopping");
        void shutdown("split-violation", 2);
        throw new ApiError(503, "misconfigured", "gateway misconfiguration; request refused");
      }
      return names;
    } catch (err) {
      if (err instanceof ApiError) throw err;
      const code = ConnectError.from(err).code;
      throw new ApiError(503, "runner_unavailable", `the vault-runner is not reachable (${Code[code]})`);
    }
  };

  const fullRunnerHealth = async (includeProcess = false) => {
    try {
      return await runner.getHealth({ includeProcess }, { timeoutMs: 2000 });
    } catch {
      return undefined;
    }
  };
  // What the operator may read (socket; with AUDIT_TOKENS also /operator on the agent port).
  const readOnly = {
    store,
    gatewayKey,
    attestation: (nonce: string | undefined) => attestation({ store, runner, gatewayKey, policy: gatewayPolicy(config) }, nonce),
    selfAudit: async () => {
      const health = await fullRunnerHealth(true);
      let secretNames: string[] = [];
      try {
        secretNames = (await runner.listSecretNames({}, { timeoutMs: 2000 })).names;
      } catch {
        // reported through the missing health answer
      }
      return selfAudit({
        gateway: processFacts(process.env, config.operatorSocket),
        runner: health,
        secretNames,
        operatorSocket: socketFacts(config.operatorSocket),
      });
    },
  };
  const guard = defaultBrowserGuard(config.allowedHosts, config.allowedOrigins);
  const agentApp = createAgentApp({
    store,
    approvals,
    logger,
    telegramConfigured: config.telegram !== undefined,
    intake: {
      fetch: config.fetch,
      maxTimeoutSeconds: config.maxTimeoutSeconds,
      approvalTtlMs: config.approvalTtlMs,
      secretNames,
    },
    limits: { maxPending: config.maxPending, submissionsPerMinute: config.submissionsPerMinute },
    waiters: config.waiters,
    agents: createAgentRegistry(config.agentTokens),
    ...(tg && { telegramState: () => (tg.webhook ? "webhook" : poller!.state) }),
    runnerHealth,
    gatewayKey: gatewayKey.publicKeyHex,
    browserGuard: guard,
  });
  const agentServer = createAdaptorServer({ fetch: agentApp.fetch }) as Server;
  keepAliveLongerThanClients(agentServer);
  // Beyond this many open sockets, new ones are closed at once (what one client can hold open).
  agentServer.maxConnections = config.maxConnections;
  await new Promise<void>((resolve, reject) => {
    agentServer.once("error", reject);
    agentServer.listen(config.port, config.host, () => resolve());
  });
  const auditServer = config.auditTokens.size > 0
    ? await listen(createRemoteAuditApp(createReadOnlyOperatorApp(readOnly), createAgentRegistry(config.auditTokens), logger, guard), config.auditPort, config.host)
    : undefined;
  const operatorServer = await startOperatorServer(
    createOperatorApp({ ...readOnly, approvals, logger, sandbox: runnerHealth, metrics: createMetrics(store, () => fullRunnerHealth()) }),
    config.operatorSocket,
  );
  poller?.start();
  const webhookServer = tg?.webhook
    ? await startWebhook({ bot: bot!, ...tg.webhook, host: config.host, logger })
    : undefined;
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
      telegram: config.telegram !== undefined,
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
    await poller?.stop();
    webhookServer?.close();
    auditServer?.close();
    agentServer.close();
    operatorServer.close();
    agentServer.closeAllConnections();
    await dispatcher.drain(5000);
    await store.close();
    process.exit(exitCode);
  }
  process.on("SIGTERM", () => void shutdown("SIGTERM"));
  process.on("SIGINT", () => void shutdown("SIGINT"));
}

// lmdb-js rejects an internal promise nobody can await when a commit fails (disk full, I/O error;
// kriszyp/lmdb-js#368). The failure also rejects the transaction its caller awaits, so the request
// is refused there and recorded as an audit write failure; this duplicate must not kill the
// gateway. Any other unhandled rejection still ends the process, as Node's default would.
process.on("unhandledRejection", (reason: unknown) => {
  if (reason instanceof Error && reason.message === "Commit failed (see commitError for details)") return;
  process.stderr.write(`gateway: unhandled rejection: ${reason instanceof Error ? reason.stack ?? reason.message : String(reason)}\n`);
  process.exit(1);
});

async function listen(app: { fetch: (req: Request) => Response | Promise<Response> }, port: number, host: string): Promise<Server> {
  const server = createAdaptorServer({ fetch: app.fetch }) as Server;
  keepAliveLongerThanClients(server);
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, host, () => resolve());
  });
  return server;
}

/**
 * Node closes an idle keep-alive connection after 5 s; a client that was busy for about that long
 * (an agent between polls, a CLI-driven test) then reuses a socket the server is closing and gets
 * "other side closed". 30 s (announced in the Keep-Alive header, which fetch/undici honour) leaves
 * clients the decision; headersTimeout must stay above it.
 */
function keepAliveLongerThanClients(server: Server): void {
  server.keepAliveTimeout = 30_000;
  server.headersTimeout = 35_000;
}

main().catch((err: unknown) => {
  process.stderr.write(`gateway: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
});
