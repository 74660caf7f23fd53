import { Bot, Composer, type Context } from "grammy";
import { autoRetry } from "@grammyjs/auto-retry";
import type { Logger } from "pino";
import { REQUEST_ID_PATTERN } from "@oauth3/shared";
import type { ApprovalService } from "../approval/approvals.js";
import type { GrantStore } from "../approval/grants.js";
import type { RequestStore } from "../store/store.js";
import { nonceMatches, parseCallbackData } from "./callback-data.js";
import type { CardStore } from "./channel.js";
import { chunkLines, escapeHtml, formatTime, pendingLine, renderOutcome, shown } from "./render.js";

export interface TelegramBotDeps {
  /** The public Bot API, a self-hosted one, or the tests' fake. */
  apiRoot: string;
  store: RequestStore;
  approvals: ApprovalService;
  grants: GrantStore;
  /** The cards posted (checked against each press); undefined without a chat. */
  cards: CardStore | undefined;
  /** Undefined until TELEGRAM_CHAT_ID is set: then only /start and /id answer. */
  chatId: number | undefined;
  approverIds: ReadonlySet<number>;
  grantTtlMs: number;
  logger: Logger;
}

/**
 * The bot: its client pointed at `deps.apiRoot`, requests retried on 429 (honouring retry_after)
 * and 5xx/network errors a bounded number of times; the commands and the callback check.
 */
export function createBot(token: string, deps: TelegramBotDeps): Bot {
  const bot = new Bot(token, { client: { apiRoot: deps.apiRoot } });
  bot.api.config.use(autoRetry({ maxRetryAttempts: 5, maxDelaySeconds: 60 }));
  const feature = new Composer<Context>();

  feature.command(["start", "id"], (ctx) =>
    ctx.reply(
      `Your user id: ${ctx.from?.id ?? "?"}\nThis chat id: ${ctx.chat.id}\n` +
        "Set TELEGRAM_CHAT_ID to the chat where approval cards should appear, and " +
        "TELEGRAM_APPROVER_IDS to the user ids allowed to decide. Never send secret values here: " +
        "bot chats are not end-to-end encrypted.",
    ),
  );

  // Everything below answers approvers in the configured chat only; others get silence.
  const approver = feature.filter(
    (ctx) => deps.chatId !== undefined && ctx.chat?.id === deps.chatId && ctx.from !== undefined && deps.approverIds.has(ctx.from.id),
  );

  approver.command("pending", (ctx) => {
    const pending = deps.store.list((r) => r.status === "pending").sort((a, b) => a.createdAt - b.createdAt);
    if (pending.length === 0) return ctx.reply("Nothing is waiting for a decision.");
    return replyAll(ctx, chunkLines(pending.map(pendingLine)));
  });

  approver.command("status", (ctx) => {
    const id = ctx.match.trim();
    const r = REQUEST_ID_PATTERN.test(id) ? deps.store.get(id) : undefined;
    if (!r) return ctx.reply("Usage: /status exec_<16 hex> (no such request)");
    const decided = r.decidedBy ? `, decided by ${escapeHtml(r.decidedBy)} at ${formatTime(r.decidedAt!)}` : "";
    const outcome = r.completedAt ? `\n${renderOutcome(r)}` : "";
    return ctx.reply(`<code>${r.id}</code>: <b>${r.status}</b>${decided}${outcome}`, { parse_mode: "HTML" });
  });

  approver.command("grants", (ctx) => {
    const active = deps.grants.active();
    if (active.length === 0) return ctx.reply("No active grants.");
    const lines = active.map(
      (g) =>
        `<code>${g.id}</code> agent ${g.agent != null ? shown(g.agent) : "(unidentified)"} skill <b>${shown(g.skillId)}</b> ` +
        `sha256 <code>${g.codeSha256}</code> ` +
        `secrets ${g.secretNames.map(escapeHtml).join(", ") || "none"}; network ${g.network.map(escapeHtml).join(", ") || "none"}; ` +
        `until ${formatTime(g.expiresAt)} (by ${shown(g.createdBy)})`,
    );
    return replyAll(ctx, chunkLines(lines, "\nRevoke with /revoke &lt;id&gt;"));
  });

  approver.command("revoke", async (ctx) => {
    const id = ctx.match.trim();
    const ok = /^[0-9a-f]{12}$/.test(id) && (await deps.grants.revoke(id, `telegram:${ctx.from!.id}`));
    deps.logger.info({ grantId: id.slice(0, 12), by: ctx.from!.id, ok }, "grant revoke command");
    return ctx.reply(ok ? `Grant ${id} revoked.` : "No active grant with that id.");
  });

  feature.on("callback_query:data", async (ctx) => {
    const text = await decideFromCallback(ctx, deps);
    try {
      await ctx.answerCallbackQuery({ text: text.slice(0, 200) });
    } catch (err) {
      deps.logger.warn({ err: String(err) }, "answerCallbackQuery failed");
    }
  });
  // A button press with no data (impossible from our cards) is still answered.
  feature.on("callback_query", (ctx) => ctx.answerCallbackQuery({ text: "Not allowed." }));

  bot.errorBoundary((err) => deps.logger.error({ err: String(err.error) }, "telegram update handler failed")).use(feature);
  return bot;
}

/**
 * Every approval security check (README, "Approving in Telegram") before anything changes: payload shape, approver, chat, the message the
 * card lives in, the nonce (constant time). Then the one atomic compare-and-set in ApprovalService.
 * Forged or stale presses change nothing and run nothing.
 */
async function decideFromCallback(ctx: Context, deps: TelegramBotDeps): Promise<string> {
  const query = ctx.callbackQuery!;
  const refuse = (reason: string) => {
    deps.logger.warn({ from: query.from.id, chat: query.message?.chat.id, reason }, "telegram callback refused");
    return "Not allowed.";
  };
  const action = parseCallbackData(query.data);
  if (!action) return refuse("malformed callback data");
  if (!deps.approverIds.has(query.from.id)) return refuse("not an approver");
  const message = query.message;
  if (!message || deps.chatId === undefined || message.chat.id !== deps.chatId) return refuse("wrong chat");
  const by = `telegram:${query.from.id}`;

  if (action.kind === "revoke") {
    const grant = deps.grants.get(action.grantId);
    if (!grant || !nonceMatches(grant.nonce, action.nonce)) return refuse("unknown grant or bad nonce");
    const revoked = await deps.grants.revoke(grant.id, by);
    deps.logger.info({ grantId: grant.id, by }, revoked ? "grant revoked" : "grant already inactive");
    return revoked ? "Grant revoked: identical requests will ask again." : "That grant is no longer active.";
  }

  const card = deps.cards?.get(action.requestId);
  // messageId 0: the card's sendMessage is still in flight (Telegram can deliver the message, and a
  // press on it, before its answer reaches us); the nonce below, only in that message's buttons,
  // still has to match.
  if (!card || card.auto || card.chatId !== message.chat.id || (card.messageId !== 0 && card.messageId !== message.message_id)) {
    return refuse("no card for this request in this message");
  }
  if (!nonceMatches(card.nonce, action.nonce)) return refuse("bad nonce");

  const result = await deps.approvals.decide(action.requestId, {
    approve: action.kind !== "deny",
    channel: "telegram",
    decidedBy: by,
    ...(action.kind === "grant" && { grantTtlMs: deps.grantTtlMs }),
  });
  switch (result.outcome) {
    case "approved":
      if (result.grant) {
        return `Running once. Identical requests are allowed until ${formatTime(result.grant.expiresAt)} (grant ${result.grant.id}).`;
      }
      return "Approved: running once.";
    case "denied":
      return "Denied.";
    case "expired":
      return "Too late: this request expired and will not run.";
    case "already_decided":
      return `Already ${result.request.status}; nothing changed.`;
    case "not_found":
      return refuse("unknown request");
  }
}

/** Sends each message of a listing in order (HTML). */
async function replyAll(ctx: Context, messages: string[]): Promise<void> {
  for (const text of messages) await ctx.reply(text, { parse_mode: "HTML" });
}
