import { randomBytes } from "node:crypto";
import { InputFile, type Api } from "grammy";
import type { InlineKeyboardMarkup } from "grammy/types";
import type { Database } from "lmdb";
import type { Follower } from "../store/change-feed.js";
import type { GrantStore } from "../approval/grants.js";
import { FINAL_STATUSES, type ExecRequest, type RequestChange, type RequestStore } from "../store/store.js";
import { encodeRequestAction, encodeRevoke } from "./callback-data.js";
import { approvalStatement, type ApprovalStatement } from "@oauth3/shared";
import { MAX_FOOTER, renderCard, renderDecisionFooter, renderGrantReport, renderOutcome, type SandboxInfo } from "./render.js";

/** What we posted for a request: where, and the nonce its buttons carry. */
export interface CardRecord {
  chatId: number;
  messageId: number;
  nonce: string;
  /** True for the report of a grant's auto-approval (no decision buttons). */
  auto?: boolean;
  /** The sandbox the card showed, so that every edit shows the same line. */
  sandbox?: SandboxInfo;
}

/** What was posted per request id (the gateway's LMDB): the bot checks presses against it. */
export type CardStore = Database<CardRecord, string>;

export interface TelegramChannelDeps {
  api: Api;
  store: RequestStore;
  cards: CardStore;
  grants: GrantStore;
  chatId: number;
  grantTtlMs: number;
  /** The runner's current sandbox modes (undefined if it cannot be asked). */
  sandbox?: () => Promise<SandboxInfo | undefined>;
}

/**
 * Approval cards in one Telegram chat, a follower of the store's changes (durable: a card that was
 * due when the gateway stopped is posted or edited after the restart). Posts a card per pending
 * request (the exact code inline or as a document), and edits it as the request moves on: who
 * decided and when, buttons removed, then the outcome with a short redacted excerpt; a request a
 * grant approved gets a report instead. Never decides anything itself: decisions arrive as
 * callbacks (bot.ts) and go through ApprovalService.decide.
 */
export class TelegramChannel implements Follower {
  readonly name = "telegram";
  private readonly cards: CardStore;
  private readonly api: Api;

  constructor(private readonly deps: TelegramChannelDeps) {
    this.cards = deps.cards;
    this.api = deps.api;
  }

  /**
   * Changes of one request arrive one at a time (change-feed.ts), so a late "running" edit cannot
   * overwrite the outcome. Acts on the request's current state, so a repeat after a restart is harmless.
   */
  async handle({ request }: RequestChange): Promise<void> {
    const current = this.deps.store.get(request.id) ?? request;
    const card = this.cards.get(current.id);
    // messageId 0: the gateway stopped between recording the nonce and posting; post it again.
    if (current.status === "pending") {
      if (!card || card.messageId === 0) await this.announce(current);
      return;
    }
    await this.apply(current.id);
  }

  private async announce(request: ExecRequest): Promise<void> {
    const code = this.deps.store.getCode(request.id)?.toString("utf8") ?? "";
    const nonce = randomBytes(16).toString("base64url");
    const sandbox = await this.deps.sandbox?.();
    const statement = approvalStatement(request, code, sandbox);
    const { html, codeAsDocument } = renderCard(statement, code);
    // Later edits add the outcome footer and may cut more free text: the details document is sent
    // whenever the card or any of its edits shortens something.
    const { details } = renderCard(statement, code, " ".repeat(MAX_FOOTER));
    const ttlMinutes = Math.round(this.deps.grantTtlMs / 60_000);
    const keyboard: InlineKeyboardMarkup = {
      inline_keyboard: [
        [
          { text: "▶️ Run once", callback_data: encodeRequestAction("approve", request.id, nonce) },
          { text: "✖️ Deny", callback_data: encodeRequestAction("deny", request.id, nonce) },
        ],
        [
          {
            text: `⏱ Run + allow for ${ttlMinutes} min: this agent, skill id, code, secrets & hosts (args may differ)`,
            callback_data: encodeRequestAction("grant", request.id, nonce),
          },
        ],
      ],
    };
    // The nonce is stored before the buttons exist, so no button can ever carry an unknown nonce.
    await this.cards.put(request.id, { chatId: this.deps.chatId, messageId: 0, nonce, ...(sandbox && { sandbox }) });
    const message = await this.api.sendMessage(this.deps.chatId, html, {
      parse_mode: "HTML",
      link_preview_options: { is_disabled: true },
      reply_markup: keyboard,
    });
    await this.cards.put(request.id, { chatId: this.deps.chatId, messageId: message.message_id, nonce, ...(sandbox && { sandbox }) });
    await this.deps.store.flushed;
    if (codeAsDocument) {
      await this.api.sendDocument(this.deps.chatId, new InputFile(Buffer.from(code), `${request.id}.ts`), {
        caption: `Exact code of ${request.id}, sha256 ${request.codeSha256}`,
        reply_parameters: { message_id: message.message_id },
      });
    }
    if (details) {
      await this.api.sendDocument(this.deps.chatId, new InputFile(Buffer.from(details), `${request.id}-details.txt`), {
        caption: `Full text of ${request.id} (the card shortened it)`,
        reply_parameters: { message_id: message.message_id },
      });
    }
  }

  /** Renders the card from the request's current state (not the event), so edits converge. */
  private async apply(id: string): Promise<void> {
    const request = this.deps.store.get(id);
    if (!request || request.status === "pending") return;
    const card = this.cards.get(id);
    if (!card || card.messageId === 0) {
      if (request.decisionChannel === "grant" && request.status !== "expired") await this.reportAutoRun(request);
      return;
    }
    const code = this.deps.store.getCode(id)?.toString("utf8") ?? "";
    const statement = approvalStatement(request, code, card.sandbox);
    let html: string;
    if (card.auto) html = this.grantReport(request, statement);
    else {
      const footer = renderDecisionFooter(request);
      html = renderCard(statement, code, footer).html + footer; // fits, footer included
    }
    try {
      await this.api.editMessageText(card.chatId, card.messageId, html, {
        parse_mode: "HTML",
        link_preview_options: { is_disabled: true },
        // A grant report keeps its Revoke button while the grant is active; a card loses its buttons.
        reply_markup: card.auto ? this.revokeKeyboard(request) : { inline_keyboard: [] },
      });
    } catch (err) {
      if (!String(err).includes("message is not modified")) throw err;
    }
  }

  /** A grant approved this request: say so in the chat, with a button to revoke the grant. */
  private async reportAutoRun(request: ExecRequest): Promise<void> {
    const sandbox = await this.deps.sandbox?.();
    const code = this.deps.store.getCode(request.id)?.toString("utf8") ?? "";
    const message = await this.api.sendMessage(this.deps.chatId, this.grantReport(request, approvalStatement(request, code, sandbox)), {
      parse_mode: "HTML",
      link_preview_options: { is_disabled: true },
      reply_markup: this.revokeKeyboard(request),
    });
    await this.cards.put(request.id, {
      chatId: this.deps.chatId,
      messageId: message.message_id,
      nonce: "",
      auto: true,
      ...(sandbox && { sandbox }),
    });
  }

  private grantReport(r: ExecRequest, statement: ApprovalStatement): string {
    const grantId = r.decidedBy?.replace(/^grant:/, "") ?? "?";
    return renderGrantReport(statement, grantId, r.decidedAt ?? r.createdAt, FINAL_STATUSES.has(r.status) ? renderOutcome(r) : undefined);
  }

  private revokeKeyboard(r: ExecRequest): InlineKeyboardMarkup {
    const grant = this.deps.grants.get(r.decidedBy?.replace(/^grant:/, "") ?? "");
    if (!grant || grant.revokedAt !== undefined || grant.expiresAt <= Date.now()) return { inline_keyboard: [] };
    return { inline_keyboard: [[{ text: "🛑 Revoke this grant", callback_data: encodeRevoke(grant.id, grant.nonce) }]] };
  }
}
