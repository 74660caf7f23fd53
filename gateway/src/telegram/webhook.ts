import type { Server } from "node:http";
import type { Bot } from "grammy";
import type { Update } from "grammy/types";
import { Hono } from "hono";
import { bodyLimit } from "hono/body-limit";
import type { Logger } from "pino";
import { serveTcp } from "../http/server.js";
import { nonceMatches } from "./callback-data.js";

export const WEBHOOK_PATH = "/telegram/webhook";

/**
 * Webhook mode (optional; long polling is the default and needs no inbound exposure). Telegram
 * sends each update with `X-Telegram-Bot-Api-Secret-Token`, compared here in constant time; a
 * request without the right token is refused and nothing happens. Served on its own port, never
 * on the agent API's.
 */
export function createWebhookApp(bot: Bot, secret: string, logger: Logger): Hono {
  const app = new Hono();
  app.post(WEBHOOK_PATH, bodyLimit({ maxSize: 1024 * 1024 }), async (c) => {
    const given = c.req.header("x-telegram-bot-api-secret-token") ?? "";
    if (!nonceMatches(secret, given)) {
      logger.warn("telegram webhook: request without the right secret token refused");
      return c.json({ ok: false }, 401);
    }
    let update: Update;
    try {
      update = (await c.req.json()) as Update;
    } catch {
      return c.json({ ok: false }, 400);
    }
    if (typeof update?.update_id !== "number") return c.json({ ok: false }, 400);
    try {
      await bot.handleUpdate(update);
    } catch (err) {
      logger.error({ updateId: update.update_id, err: String(err) }, "telegram update failed");
    }
    return c.json({ ok: true });
  });
  app.notFound((c) => c.json({ ok: false }, 404));
  return app;
}

export async function startWebhook(opts: {
  bot: Bot;
  url: string;
  secret: string;
  host: string;
  port: number;
  logger: Logger;
}): Promise<Server> {
  const server = await serveTcp(createWebhookApp(opts.bot, opts.secret, opts.logger), opts.port, opts.host);
  await opts.bot.init();
  await opts.bot.api.setWebhook(opts.url, {
    secret_token: opts.secret,
    allowed_updates: ["message", "callback_query"],
  });
  opts.logger.info({ url: opts.url, port: opts.port }, "telegram: webhook set");
  return server;
}
