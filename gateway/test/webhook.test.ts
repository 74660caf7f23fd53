import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { Bot } from "grammy";
import { pino } from "pino";
import { createWebhookApp, WEBHOOK_PATH } from "../src/telegram/webhook.ts";
import { FakeTelegram } from "../../test/helpers/fake-telegram.ts";

const TOKEN = "123456:webhook-test-token";
const SECRET = "wh_secret_0123456789abcdefghijklmnopqrstuv";
const tg = new FakeTelegram(TOKEN);
before(() => tg.start());
after(() => tg.stop());

/** A real grammY bot (getMe answered by the fake Bot API) whose handler records what it was given. */
function webhook(handlerMs = 0, timeoutMs?: number) {
  const bot = new Bot(TOKEN, { client: { apiRoot: tg.apiRoot } });
  const handled: number[] = [];
  let finished!: () => void;
  const lastHandled = new Promise<void>((resolve) => (finished = resolve));
  bot.on("callback_query", async (ctx) => {
    if (handlerMs) await new Promise((r) => setTimeout(r, handlerMs));
    handled.push(ctx.update.update_id);
    finished();
  });
  const app = createWebhookApp(bot, SECRET, pino({ level: "silent" }), timeoutMs);
  const post = (body: string, token?: string) =>
    app.request(WEBHOOK_PATH, {
      method: "POST",
      headers: { "content-type": "application/json", ...(token !== undefined && { "x-telegram-bot-api-secret-token": token }) },
      body,
    });
  return { handled, post, lastHandled };
}

const update = (id: number) =>
  JSON.stringify({
    update_id: id,
    callback_query: { id: String(id), from: { id: 1, is_bot: false, first_name: "a" }, chat_instance: "x", data: "d" },
  });

test("webhook (grammY webhookCallback): the secret token, a JSON 401, a 400 for non-JSON, the 1 MiB limit", async () => {
  const { handled, post } = webhook();
  for (const token of [undefined, "", `${SECRET}X`, SECRET.slice(0, -1)]) {
    const res = await post(update(1), token);
    assert.equal(res.status, 401, String(token));
    assert.deepEqual(await res.json(), { ok: false });
  }
  assert.deepEqual(handled, [], "nothing handled without the token");
  assert.equal((await post("{not json", SECRET)).status, 400);
  assert.equal((await post(JSON.stringify({ pad: "x".repeat(1024 * 1024) }), SECRET)).status, 413);
  const ok = await post(update(2), SECRET);
  assert.equal(ok.status, 200);
  assert.deepEqual(handled, [2]);
});

test("webhook: a slow update is answered at the timeout (Telegram would resend it), and still handled", async () => {
  const { handled, post, lastHandled } = webhook(400, 50);
  const res = await post(update(3), SECRET);
  assert.equal(res.status, 200);
  assert.deepEqual(handled, [], "answered before the handler finished");
  await lastHandled;
  assert.deepEqual(handled, [3]);
});
