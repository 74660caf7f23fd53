import type { Server } from "node:http";
import { webhookCallback, type Bot } from "grammy";
import { Hono } from "hono";
import { bodyLimit } from "hono/body-limit";
import type { Logger } from "pino";
import { serveTcp } from "../http/server.js";

export const WEBHOOK_PATH = "/telegram/webhook";

/**
 * Webhook mode (optional; long polling is the default and needs no inbound exposure), through
 * grammY's webhookCallback: it compares `X-Telegram-Bot-Api-Secret-Token` with the secret in
 * constant time (a request without it is refused and nothing happens) and answers once the update
 * is handled, or after 10 s (`onTimeout: "return"`: Telegram would otherwise resend it; decisions
 * are compare-and-set anyway). Around it, kept from before: a 1 MiB body limit, a JSON 401 for a
 * wrong token, a 400 for a body that is not JSON. Served on its own port, never on the agent API's.
 */
export function createWebhookApp(bot: Bot, secret: string, logger: Logger, timeoutMs = 10_000): Hono {
  const handle = webhookCallback(bot, "hono", { secretToken: secret, onTimeout: "return", timeoutMilliseconds: timeoutMs });
  const app = new Hono();
  app.post(WEBHOOK_PATH, bodyLimit({ maxSize: 1024 * 1024, onError: (c) => c.json({ ok: false }, 413) }), async (c) => {
    let res: Response;
    try {
      res = await handle(c);
    } catch (err) {
      if (err instanceof SyntaxError) return c.json({ ok: false }, 400);
      logger.error({ err: String(err) }, "telegram update failed");
      return c.json({ ok: true }); // handled as far as Telegram is concerned: a resend would fail the same way
    }
    if (res.status === 401) {
      logger.warn("telegram webhook: request without the right secret token refused");
      return c.json({ ok: false }, 401);
    }
    return res;
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
