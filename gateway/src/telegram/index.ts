import type { Server } from "node:http";
import type { Logger } from "pino";
import type { ApprovalService } from "../approval/approvals.js";
import type { ChangeFeed } from "../store/change-feed.js";
import type { GrantStore } from "../approval/grants.js";
import type { RequestStore } from "../store/store.js";
import { createBot } from "./bot.js";
import { TelegramChannel, type CardRecord } from "./channel.js";
import { TelegramPoller } from "./poller.js";
import type { SandboxInfo } from "./render.js";
import { startWebhook } from "./webhook.js";

export interface TelegramOptions {
  token: string;
  apiRoot: string;
  /** Undefined until TELEGRAM_CHAT_ID is set: then only /start and /id answer. */
  chatId: number | undefined;
  approverIds: ReadonlySet<number>;
  webhook: { url: string; secret: string; port: number } | undefined;
}

export interface TelegramDeps {
  store: RequestStore;
  approvals: ApprovalService;
  grants: GrantStore;
  feed: ChangeFeed;
  grantTtlMs: number;
  /** Where the webhook listens (the gateway's HOST). */
  host: string;
  logger: Logger;
  sandbox: () => Promise<SandboxInfo | undefined>;
}

/**
 * Telegram, assembled once: the bot (its handlers decide through the approval service), the card
 * channel (a durable follower of the store's changes) and the way updates arrive (long polling by
 * default, or a webhook). `start` begins following and receiving; `stop` ends both.
 */
export function createTelegram(options: TelegramOptions, deps: TelegramDeps) {
  const { chatId } = options;
  const cards = chatId === undefined ? undefined : deps.store.subDb<CardRecord>("telegram_cards");
  const bot = createBot(options.token, {
    apiRoot: options.apiRoot,
    store: deps.store,
    approvals: deps.approvals,
    grants: deps.grants,
    cards,
    chatId,
    approverIds: options.approverIds,
    grantTtlMs: deps.grantTtlMs,
    logger: deps.logger,
  });
  const channel =
    cards && chatId !== undefined
      ? new TelegramChannel({
          api: bot.api,
          store: deps.store,
          cards,
          grants: deps.grants,
          chatId,
          grantTtlMs: deps.grantTtlMs,
          sandbox: deps.sandbox,
        })
      : undefined;
  const poller = options.webhook ? undefined : new TelegramPoller(bot, deps.store.subDb<number>("telegram_state"), deps.logger);
  let webhookServer: Server | undefined;
  if (chatId === undefined) {
    deps.logger.warn(
      "TELEGRAM_CHAT_ID is not set: the bot only answers /start and /id (send it /id to learn the chat id); approve with `npm run oauth3`",
    );
  } else if (options.approverIds.size === 0) {
    deps.logger.warn(
      "no Telegram approvers: TELEGRAM_CHAT_ID is a group, so set TELEGRAM_APPROVER_IDS; cards are shown but nobody can decide in Telegram",
    );
  }
  return {
    bot,
    /** "webhook", or the poller's state. */
    state: (): string => (options.webhook ? "webhook" : poller!.state),
    async start(): Promise<void> {
      if (channel) deps.feed.follow(channel, { durable: true });
      poller?.start();
      if (options.webhook) webhookServer = await startWebhook({ bot, ...options.webhook, host: deps.host, logger: deps.logger });
    },
    async stop(): Promise<void> {
      await poller?.stop();
      webhookServer?.close();
    },
  };
}
