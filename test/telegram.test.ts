/**
 * Telegram approvals as a user sees them on a phone, against a fake Bot API server that the real
 * grammY client inside the real gateway process talks to (TELEGRAM_API_ROOT). Forged presses are
 * built field by field, as a modified Telegram client could send them.
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { FakeTelegram, type SentMessage } from "./helpers/fake-telegram.ts";
import { freePort, Stack } from "./helpers/stack.ts";
import { tempDir } from "./helpers/tmp.ts";
import { MODE } from "./helpers/sandbox-mode.ts";

const TOKEN = "5555555:AAtelegram-token-never-printed";
const CHAT = 7001; // a private chat: its id is the approver's user id
const OTHER_USER = 7002;
const OTHER_CHAT = -100999;
const FOO = "tg-foo-secret-value-93c1";

const dir = tempDir("oauth3-tg-");
writeFileSync(join(dir, "secrets.env"), `FOO=${FOO}\n`, { mode: 0o600 });
const tg = new FakeTelegram(TOKEN);
let stack: Stack;

before(async () => {
  await tg.start();
  stack = new Stack({
    dir,
    port: await freePort(),
    env: {
      TELEGRAM_BOT_TOKEN: TOKEN,
      TELEGRAM_CHAT_ID: String(CHAT),
      TELEGRAM_API_ROOT: tg.apiRoot,
      SECRETS_FILE: join(dir, "secrets.env"),
      RUNNER_BINDINGS: "FOO env",
      RUNNER_SKILL_UID_BASE: "64000",
      // Long enough for the restart tests on a loaded machine; the expiry test restarts with the minimum.
      APPROVAL_TTL_SECONDS: "60",
    },
  });
  await stack.start();
});
after(async () => {
  await stack?.stop();
  await tg.stop();
});

const data = (code: string) => `data:text/typescript,${encodeURIComponent(code)}`;

async function submit(body: Record<string, unknown>): Promise<{ id: string; card: SentMessage }> {
  const { status, json } = await stack.post(body);
  assert.equal(status, 200, JSON.stringify(json));
  const id = String(json.request_id);
  const sent = await tg.waitFor(() => tg.sentTo(CHAT).find((m) => m.text?.includes(id) && m.reply_markup));
  // A snapshot, as the phone showed it: a stale client can still press buttons that edits removed.
  return { id, card: structuredClone(sent) };
}

/** The same callback data with one nonce character changed (always a different nonce). */
function wrongNonce(data: string): string {
  const i = data.length - 5;
  return `${data.slice(0, i)}${data[i] === "A" ? "B" : "A"}${data.slice(i + 1)}`;
}

function button(card: SentMessage, prefix: string): string {
  const b = card.reply_markup!.inline_keyboard.flat().find((x) => x.callback_data.startsWith(prefix));
  assert.ok(b, `no ${prefix} button`);
  return b.callback_data;
}

async function press(opts: { fromId?: number; chatId?: number; messageId: number; data: string }): Promise<string | undefined> {
  const queryId = tg.pressButton({ fromId: opts.fromId ?? CHAT, chatId: opts.chatId ?? CHAT, messageId: opts.messageId, data: opts.data });
  const answer = await tg.waitFor(() => tg.answers.find((a) => a.callback_query_id === queryId));
  return answer.text;
}

function runsOf(id: string): number {
  return stack
    .log()
    .split("\n")
    .filter((l) => l.includes('"msg":"run started"') && l.includes(id)).length;
}

describe("telegram approvals", () => {
  test("the card shows exactly what will run; Run once runs it once; the card follows", async () => {
    const { id, card } = await submit({
      skill_id: "weather",
      skill_url: data(
        "// @description Says the secret\n// @secrets FOO\n// @network api.example.com\nconsole.log('key', Deno.env.get('FOO'))",
      ),
      secrets: ["FOO"],
      args: { city: "Zürich" },
    });
    const status = await stack.status(id);
    assert.equal(card.parse_mode, "HTML");
    assert.ok(card.link_preview_disabled, "link previews disabled");
    for (const expected of [
      String(status.code_hash),
      "<code>FOO</code>",
      "<code>api.example.com:443</code>",
      "Timeout: 30 s",
      "Says the secret",
      "<code>city</code> = &quot;Zürich&quot;",
      `${status.code_size} bytes`,
      "console.log(&#39;key&#39;",
      "Expires:",
    ]) {
      if (expected.includes("&#39;")) continue; // quotes in code are left as-is (only & < > " are escaped)
      assert.ok(card.text!.includes(expected), `card lacks ${expected}:\n${card.text}`);
    }
    assert.ok(card.text!.includes("console.log('key', Deno.env.get('FOO'))"), "the exact code is inline");
    assert.match(
      card.text!,
      MODE.isolation === "per-run-uid" && MODE.egress === "proxy+firewall"
        ? /Sandbox: own uid, egress only via the checking proxy/
        : new RegExp(`Weaker sandbox</b>: isolation ${MODE.isolation}, egress ${MODE.egress}`),
    );
    assert.equal(card.reply_markup!.inline_keyboard.flat().length, 3);

    assert.equal(await press({ messageId: card.message_id, data: button(card, "a:") }), "Approved: running once.");
    const final = await stack.waitFinal(id);
    assert.equal(final.status, "completed");
    assert.equal(final.decided_by, `telegram:${CHAT}`);
    const edited = await tg.waitFor(() =>
      tg.messages.get(card.message_id)!.text!.includes("Completed") ? tg.messages.get(card.message_id) : undefined,
    );
    assert.match(edited!.text!, /Approved<\/b> by telegram:7001 at/);
    assert.match(edited!.text!, /key \[REDACTED:FOO\]/, "a short redacted excerpt");
    assert.deepEqual(edited!.reply_markup?.inline_keyboard ?? [], [], "buttons removed");

    // Duplicate tap, and a late Deny: nothing changes, nothing runs again.
    assert.match(String(await press({ messageId: card.message_id, data: button(card, "a:") })), /^Already completed/);
    assert.match(String(await press({ messageId: card.message_id, data: button(card, "d:") })), /^Already completed/);
    assert.equal(runsOf(id), 1);
  });

  test("forged presses change nothing and run nothing", async () => {
    const a = await submit({ skill_id: "target", skill_url: data("console.log('A')") });
    const b = await submit({ skill_id: "other", skill_url: data("console.log('B')") });
    const approveA = button(a.card, "a:");
    const nonceB = button(b.card, "a:").split(":")[2]!;
    const forgeries: Array<Parameters<typeof press>[0]> = [
      { fromId: OTHER_USER, messageId: a.card.message_id, data: approveA }, // not an approver
      { chatId: OTHER_CHAT, messageId: a.card.message_id, data: approveA }, // other chat
      { messageId: b.card.message_id, data: approveA }, // A's button pressed on B's message
      { messageId: a.card.message_id, data: wrongNonce(approveA) }, // wrong nonce
      { messageId: a.card.message_id, data: `a:${a.id.slice(5)}:${nonceB}` }, // another request's nonce
      { messageId: a.card.message_id, data: "a:0123456789abcdef:AAAAAAAAAAAAAAAAAAAAAA" }, // unknown request
      { messageId: a.card.message_id, data: `approve:${a.id}:once` }, // upstream's format
      { messageId: a.card.message_id, data: "\u0000\u202e" }, // junk
    ];
    // Each press was answered, and the answer comes after the whole check: nothing is still going on.
    for (const forged of forgeries) assert.equal(await press(forged), "Not allowed.", JSON.stringify(forged));
    await tg.consumed();
    assert.equal((await stack.status(a.id)).status, "pending");
    assert.equal((await stack.status(b.id)).status, "pending");
    assert.equal(runsOf(a.id) + runsOf(b.id), 0);
    assert.equal(tg.messages.get(a.card.message_id)!.edits, 0, "the card was not touched");
    // Deny, then a genuine approve: still denied.
    assert.equal(await press({ messageId: b.card.message_id, data: button(b.card, "d:") }), "Denied.");
    assert.match(String(await press({ messageId: b.card.message_id, data: button(b.card, "a:") })), /^Already denied/);
    await tg.waitFor(() => tg.messages.get(b.card.message_id)!.text!.includes("Denied</b> by telegram:7001"));
    assert.equal(runsOf(b.id), 0);
  });

  test("injection attempts render as inert, flagged text", async () => {
    const { card } = await submit({
      skill_id: '<b>trusted</b> & <a href="tg://x">',
      skill_url: data('// @description <a href="https://evil.example">click</a> \u202egnp.exe\nconsole.log(1)'),
      args: { note: "</code><i>x</i>\u200b" },
    });
    const text = card.text!;
    assert.ok(text.includes("<b>&lt;b&gt;trusted&lt;/b&gt; &amp; &lt;a href=&quot;tg://x&quot;&gt;</b>"), text);
    assert.ok(text.includes("&lt;a href=&quot;https://evil.example&quot;&gt;click&lt;/a&gt; \\u202egnp.exe"), text);
    assert.ok(text.includes("&lt;/code&gt;&lt;i&gt;x&lt;/i&gt;\\u200b"), text);
    assert.match(text, /Hidden or direction-changing characters<\/b> were shown as \\u escapes in: description, arg note/);
    assert.match(text, /The code contains hidden, control or direction-changing characters/);
    assert.ok(!text.includes("\u202e") && !text.includes("\u200b"));
    // Bidi controls in the skill id itself are refused before any card.
    const refused = await stack.post({ skill_id: "x\u202ey", skill_url: data("console.log(1)") });
    assert.equal(refused.status, 400);
  });

  test("long code is attached as a document with its exact bytes", async () => {
    const code = `// @skill big\n${"console.log('x');\n".repeat(200)}`;
    const { id, card } = await submit({ skill_id: "big", skill_url: data(code) });
    assert.match(card.text!, /attached below as a document/);
    const doc = await tg.waitFor(() => tg.sentTo(CHAT).find((m) => m.document && m.reply_to_message_id === card.message_id));
    assert.equal(doc.document!.content, code);
    assert.equal(doc.document!.file_name, `${id}.ts`);
  });

  test("a grant auto-approves identical requests, reported in the chat, until revoked", async () => {
    const skill = { skill_id: "granted", skill_url: data("// @secrets FOO\nconsole.log('granted run')"), secrets: ["FOO"] };
    const first = await submit({ ...skill, args: { n: "1" } });
    assert.match(
      String(await press({ messageId: first.card.message_id, data: button(first.card, "g:") })),
      /^Running once\. Identical requests are allowed until/,
    );
    await stack.waitFinal(first.id);

    // Same code, secrets and hosts, other args: runs without asking, and the chat is told.
    const { json } = await stack.post({ ...skill, args: { n: "2" } });
    const secondId = String(json.request_id);
    const second = await stack.waitFinal(secondId);
    assert.equal(second.status, "completed");
    assert.match(String(second.decided_by), /^grant:[0-9a-f]{12}$/);
    const grantId = String(second.decided_by).slice("grant:".length);
    const report = structuredClone(
      await tg.waitFor(() =>
        tg.sentTo(CHAT).find((m) => m.text?.includes("Auto-approved") && m.text.includes(secondId) && m.text.includes("Completed")),
      ),
    );
    assert.ok(report.text!.includes(`grant <code>${grantId}</code>`));

    tg.sendText({ fromId: CHAT, chatId: CHAT, text: "/grants" });
    const listed = await tg.waitFor(() =>
      tg.sentTo(CHAT).find((m) => m.text?.startsWith(`<code>${grantId}</code> agent (unidentified) skill <b>granted</b>`)),
    );
    assert.ok(listed.text!.includes(`sha256 <code>${String(second.code_hash)}</code>`), "the grant listing shows the full hash");

    // The report's Revoke button: forged nonce refused, a non-approver's /revoke ignored, then revoked.
    const revoke = button(report, "r:");
    assert.equal(await press({ messageId: report.message_id, data: wrongNonce(revoke) }), "Not allowed.");
    tg.sendText({ fromId: OTHER_USER, chatId: CHAT, text: `/revoke ${grantId}` });
    await tg.consumed();
    const stillGranted = await stack.post({ ...skill, args: { n: "3" } });
    assert.match(String((await stack.waitFinal(String(stillGranted.json.request_id))).decided_by), /^grant:/);
    assert.equal(await press({ messageId: report.message_id, data: revoke }), "Grant revoked: identical requests will ask again.");
    tg.sendText({ fromId: CHAT, chatId: CHAT, text: `/revoke ${grantId}` });
    await tg.waitFor(() => tg.sentTo(CHAT).find((m) => m.text === "No active grant with that id."));

    const fourth = await submit({ ...skill, args: { n: "4" } });
    assert.equal((await stack.status(fourth.id)).status, "pending", "asks again after revocation");
  });

  test("commands: /id for anyone, the rest for approvers only", async () => {
    tg.sendText({ fromId: OTHER_USER, chatId: OTHER_USER, text: "/id" });
    await tg.waitFor(() => tg.sentTo(OTHER_USER).find((m) => m.text?.includes(`Your user id: ${OTHER_USER}`)));
    tg.sendText({ fromId: OTHER_USER, chatId: OTHER_USER, text: "/pending" });
    tg.sendText({ fromId: CHAT, chatId: CHAT, text: "/pending" });
    const listing = await tg.waitFor(() => tg.sentTo(CHAT).find((m) => m.text?.includes("expires") && m.text.includes("target")));
    const pendingId = /exec_[0-9a-f]{16}/.exec(listing.text!)![0];
    tg.sendText({ fromId: CHAT, chatId: CHAT, text: `/status ${pendingId}` });
    await tg.waitFor(() => tg.sentTo(CHAT).find((m) => m.text === `<code>${pendingId}</code>: <b>pending</b>`));
    tg.sendText({ fromId: CHAT, chatId: CHAT, text: "/status nonsense" });
    await tg.waitFor(() => tg.sentTo(CHAT).find((m) => m.text?.startsWith("Usage: /status")));
    await tg.consumed();
    assert.equal(tg.sentTo(OTHER_USER).length, 1, "a non-approver gets nothing beyond /id");
  });

  test("429 and 5xx are retried without losing or duplicating the card", async () => {
    tg.failNext("sendMessage", { error_code: 429, description: "Too Many Requests: retry after 1", parameters: { retry_after: 1 } });
    tg.failNext("sendMessage", { error_code: 502, description: "Bad Gateway" });
    const { id, card } = await submit({ skill_id: "retry", skill_url: data("console.log('retry')") });
    // A request's changes reach the card channel one at a time: once the denial's edit is there,
    // a second card for the request (a repeated announce) would have been sent before it.
    assert.equal(await press({ messageId: card.message_id, data: button(card, "d:") }), "Denied.");
    await tg.waitFor(() => tg.messages.get(card.message_id)!.text!.includes("Denied</b>"));
    assert.equal(tg.sentTo(CHAT).filter((m) => m.text?.includes(id) && m.reply_markup).length, 1);
  });

  test("after a restart the stored card still works, once", async () => {
    const { id, card } = await submit({ skill_id: "restart", skill_url: data("console.log('after restart')") });
    const offsets = () => tg.calls.filter((c) => c.method === "getUpdates").map((c) => Number(c.body.offset ?? 0));
    const before = Math.max(...offsets());
    assert.equal(await stack.stop(), 0);
    const callsBefore = tg.calls.length;
    await stack.start();
    await tg.waitFor(() => tg.calls.slice(callsBefore).some((c) => c.method === "getUpdates"));
    const firstAfter = Number(tg.calls.slice(callsBefore).find((c) => c.method === "getUpdates")!.body.offset ?? 0);
    assert.ok(before > 0 && firstAfter >= before, `offset kept across the restart (${before} -> ${firstAfter})`);
    assert.equal(await press({ messageId: card.message_id, data: button(card, "a:") }), "Approved: running once.");
    const final = await stack.waitFinal(id);
    assert.equal((final.result as { stdout: string }).stdout, "after restart\n");
    assert.match(String(await press({ messageId: card.message_id, data: button(card, "a:") })), /^Already/);
    assert.equal(runsOf(id), 1);
  });

  test("a card still due when the gateway stopped is posted after the restart (caught up from the store)", async () => {
    tg.failNext("sendMessage", { error_code: 502, description: "Bad Gateway" }, 1000);
    const { status, json } = await stack.post({ skill_id: "caught-up", skill_url: data("console.log('caught up')") });
    assert.equal(status, 200);
    const id = String(json.request_id);
    // The gateway tried, Telegram kept failing, and the gateway stopped while still retrying.
    await tg.waitFor(() => tg.calls.find((c) => c.method === "sendMessage" && String(c.body.text ?? "").includes(id)));
    assert.equal(await stack.stop(), 0);
    assert.equal(tg.sentTo(CHAT).filter((m) => m.text?.includes(id)).length, 0, "no card before the restart");
    tg.clearFailures("sendMessage");
    await stack.start();
    const card = await tg.waitFor(() => tg.sentTo(CHAT).find((m) => m.text?.includes(id) && m.reply_markup));
    assert.equal(await press({ messageId: card.message_id, data: button(card, "a:") }), "Approved: running once.");
    assert.equal(((await stack.waitFinal(id)).result as { stdout: string }).stdout, "caught up\n");
    assert.equal(tg.sentTo(CHAT).filter((m) => m.text?.includes(id) && m.reply_markup).length, 1, "one card");
  });

  test("expiry fails closed: the card says so and a late press runs nothing", async () => {
    // The minimum TTL (10 s), so this test is quick: a restart of the gateway with it.
    assert.equal(await stack.stop(), 0);
    stack.options.env!.APPROVAL_TTL_SECONDS = "10";
    await stack.start();
    const { id, card } = await submit({ skill_id: "slow-human", skill_url: data("console.log('late')") });
    const expiresAt = Number((await stack.status(id)).expires_at);
    await new Promise((r) => setTimeout(r, Math.max(0, expiresAt - Date.now()) + 200));
    assert.equal(await press({ messageId: card.message_id, data: button(card, "a:") }), "Too late: this request expired and will not run.");
    assert.equal((await stack.status(id)).status, "expired");
    await tg.waitFor(() => tg.messages.get(card.message_id)!.text!.includes("Expired</b>"));
    assert.deepEqual(tg.messages.get(card.message_id)!.reply_markup?.inline_keyboard ?? [], []);
    assert.equal(runsOf(id), 0);
  });

  test("409 Conflict is reported clearly, polling recovers; the token is never printed", async () => {
    tg.failNext(
      "getUpdates",
      { error_code: 409, description: "Conflict: terminated by other getUpdates request; make sure that only one bot instance is running" },
      2,
    );
    await tg.waitFor(() => stack.log().includes("409 Conflict: another process is already receiving updates"), 15_000);
    const during = (await (await fetch(`${stack.baseUrl}/health`)).json()) as Record<string, unknown>;
    assert.equal(during.telegram, "conflict");
    const { card } = await submit({ skill_id: "after-409", skill_url: data("console.log(1)") });
    assert.equal(await press({ messageId: card.message_id, data: button(card, "d:") }), "Denied.");
    const recovered = (await (await fetch(`${stack.baseUrl}/health`)).json()) as Record<string, unknown>;
    assert.equal(recovered.telegram, "polling");
    for (const s of [TOKEN, "never-printed", FOO]) assert.ok(!stack.log().includes(s), `log contains ${s.slice(0, 8)}`);
  });
});

describe("telegram webhook mode", () => {
  const whDir = tempDir("oauth3-tgwh-");
  const whTg = new FakeTelegram(TOKEN);
  const secret = "wh_secret_0123456789abcdefghijklmnopqrstuv";
  let whStack: Stack;
  let whPort = 0;

  before(async () => {
    await whTg.start();
    whPort = await freePort();
    whStack = new Stack({
      dir: whDir,
      port: await freePort(),
      env: {
        TELEGRAM_BOT_TOKEN: TOKEN,
        TELEGRAM_CHAT_ID: String(CHAT),
        TELEGRAM_API_ROOT: whTg.apiRoot,
        TELEGRAM_WEBHOOK_URL: "https://bot.example.com/telegram/webhook",
        TELEGRAM_WEBHOOK_SECRET: secret,
        TELEGRAM_WEBHOOK_PORT: String(whPort),
        RUNNER_SKILL_UID_BASE: "64100",
      },
    });
    await whStack.start();
  });
  after(async () => {
    await whStack?.stop();
    await whTg.stop();
  });

  test("updates are accepted only with the secret token; the agent port has no webhook", async () => {
    assert.deepEqual(whTg.webhook, { url: "https://bot.example.com/telegram/webhook", secret });
    assert.equal(whTg.calls.filter((c) => c.method === "getUpdates").length, 0, "no polling in webhook mode");
    const { json } = await whStack.post({ skill_id: "wh", skill_url: data("console.log('via webhook')") });
    const id = String(json.request_id);
    const card = structuredClone(await whTg.waitFor(() => whTg.sentTo(CHAT).find((m) => m.text?.includes(id))));
    const update = whTg.callbackUpdate({ fromId: CHAT, chatId: CHAT, messageId: card.message_id, data: button(card, "a:") });
    const deliver = (port: number, token?: string) =>
      fetch(`http://127.0.0.1:${port}/telegram/webhook`, {
        method: "POST",
        headers: { "content-type": "application/json", ...(token !== undefined && { "x-telegram-bot-api-secret-token": token }) },
        body: JSON.stringify(update),
      });
    for (const token of [undefined, "", `${secret.slice(0, -1)}X`, `${secret}X`]) {
      assert.equal((await deliver(whPort, token)).status, 401, String(token));
    }
    assert.equal((await deliver(whStack.options.port, secret)).status, 404, "not on the agent port");
    assert.equal((await whStack.status(id)).status, "pending");
    assert.equal((await deliver(whPort, secret)).status, 200);
    const final = await whStack.waitFinal(id);
    assert.equal((final.result as { stdout: string }).stdout, "via webhook\n");
    const health = (await (await fetch(`${whStack.baseUrl}/health`)).json()) as Record<string, unknown>;
    assert.equal(health.telegram, "webhook");
    assert.ok(!whStack.log().includes(secret) && !whStack.log().includes(TOKEN));
  });
});
