import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import busboy from "busboy";

/**
 * A fake Telegram Bot API server on 127.0.0.1, written from the public Bot API reference, so that the
 * real grammY client (pointed at it with TELEGRAM_API_ROOT) talks to it unchanged: POST
 * /bot<token>/<method> with JSON or multipart bodies, `{ok, result}` / `{ok:false, error_code,
 * description, parameters}` answers, getUpdates long polling with offset/timeout. Tests inject
 * updates as a user's client would produce them, forged ones included, and can make methods fail.
 */
export interface SentMessage {
  message_id: number;
  chat_id: number;
  text?: string;
  parse_mode?: string;
  reply_markup?: { inline_keyboard: Array<Array<{ text: string; callback_data: string }>> };
  document?: { file_name: string; content: string };
  caption?: string;
  reply_to_message_id?: number;
  edits: number;
  link_preview_disabled?: boolean;
}

interface Failure {
  error_code: number;
  description: string;
  parameters?: { retry_after?: number };
}

export class FakeTelegram {
  readonly messages = new Map<number, SentMessage>();
  readonly calls: Array<{ method: string; body: Record<string, unknown> }> = [];
  readonly answers: Array<{ callback_query_id: string; text?: string }> = [];
  private readonly updates: Array<Record<string, unknown>> = [];
  private readonly failures = new Map<string, Failure[]>();
  private waiters: Array<() => void> = [];
  private nextMessageId = 100;
  private nextUpdateId = 1;
  private server?: Server;
  port = 0;
  webhook?: { url: string; secret: string | undefined };

  constructor(
    readonly token: string,
    readonly botId = 424242,
  ) {}

  get apiRoot(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  async start(port = 0, host = "127.0.0.1"): Promise<void> {
    this.server = createServer((req, res) => void this.handle(req, res));
    await new Promise<void>((r) => this.server!.listen(port, host, () => r()));
    this.port = (this.server.address() as { port: number }).port;
  }

  async stop(): Promise<void> {
    this.release();
    this.server?.closeAllConnections();
    await new Promise((r) => this.server?.close(r));
  }

  /** The next `count` calls of `method` fail with this error. */
  failNext(method: string, failure: Failure, count = 1): void {
    const list = this.failures.get(method) ?? [];
    for (let i = 0; i < count; i++) list.push(failure);
    this.failures.set(method, list);
  }

  /** Calls of `method` succeed again. */
  clearFailures(method: string): void {
    this.failures.delete(method);
  }

  /** A user pressing an inline button (or a client forging one: every field is the test's choice). */
  pressButton(opts: { fromId: number; chatId: number; messageId: number; data: string; firstName?: string }): string {
    const id = String(1_000_000 + this.nextUpdateId);
    this.push({
      callback_query: {
        id,
        from: { id: opts.fromId, is_bot: false, first_name: opts.firstName ?? "Approver" },
        message: {
          message_id: opts.messageId,
          date: Math.floor(Date.now() / 1000),
          chat: { id: opts.chatId, type: opts.chatId > 0 ? "private" : "group" },
          text: "card",
        },
        chat_instance: "1",
        data: opts.data,
      },
    });
    return id;
  }

  /** An update object as pressButton would queue it, for delivering by webhook instead. */
  callbackUpdate(opts: { fromId: number; chatId: number; messageId: number; data: string }): Record<string, unknown> {
    this.pressButton(opts);
    return this.updates.pop()!;
  }

  sendText(opts: { fromId: number; chatId: number; text: string }): void {
    const entities = opts.text.startsWith("/") ? [{ type: "bot_command", offset: 0, length: opts.text.split(" ")[0]!.length }] : undefined;
    this.push({
      message: {
        message_id: this.nextMessageId++,
        date: Math.floor(Date.now() / 1000),
        chat: { id: opts.chatId, type: opts.chatId > 0 ? "private" : "group" },
        from: { id: opts.fromId, is_bot: false, first_name: "User" },
        text: opts.text,
        ...(entities && { entities }),
      },
    });
  }

  /** Messages sent to `chatId`, oldest first. */
  sentTo(chatId: number): SentMessage[] {
    return [...this.messages.values()].filter((m) => m.chat_id === chatId);
  }

  /**
   * Resolves once the bot has handled every update sent so far: it polls updates one batch at a
   * time and asks for the next batch (offset past the last id) only after handling the batch.
   */
  async consumed(ms = 10_000): Promise<void> {
    const last = this.nextUpdateId - 1;
    await this.waitFor(
      () => (this.calls.some((c) => c.method === "getUpdates" && Number(c.body.offset ?? 0) > last) ? true : undefined),
      ms,
    );
  }

  async waitFor<T>(check: () => T | undefined, ms = 10_000): Promise<T> {
    const deadline = Date.now() + ms;
    for (;;) {
      const value = check();
      if (value !== undefined && value !== false) return value;
      if (Date.now() > deadline) throw new Error("fake Telegram: condition not met in time");
      await new Promise((r) => setTimeout(r, 20));
    }
  }

  private push(update: Record<string, unknown>): void {
    this.updates.push({ update_id: this.nextUpdateId++, ...update });
    this.release();
  }

  private release(): void {
    const waiters = this.waiters;
    this.waiters = [];
    for (const w of waiters) w();
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const match = /^\/bot([^/]+)\/(\w+)$/.exec(req.url ?? "");
    const reply = (status: number, body: unknown) => {
      res.writeHead(status, { "content-type": "application/json" }).end(JSON.stringify(body));
    };
    if (!match || match[1] !== this.token) {
      return reply(match ? 401 : 404, { ok: false, error_code: match ? 401 : 404, description: match ? "Unauthorized" : "Not Found" });
    }
    const method = match[2]!;
    let body: Record<string, unknown>;
    try {
      body = await readBody(req);
    } catch (err) {
      return reply(400, { ok: false, error_code: 400, description: `Bad Request: unreadable body (${(err as Error).message})` });
    }
    this.calls.push({ method, body });
    const failure = this.failures.get(method)?.shift();
    if (failure) return reply(failure.error_code, { ok: false, ...failure });
    try {
      reply(200, { ok: true, result: await this.call(method, body) });
    } catch (err) {
      reply(400, { ok: false, error_code: 400, description: `Bad Request: ${(err as Error).message}` });
    }
  }

  private async call(method: string, b: Record<string, unknown>): Promise<unknown> {
    switch (method) {
      case "getMe":
        return {
          id: this.botId,
          is_bot: true,
          first_name: "oauth3 test",
          username: "oauth3_test_bot",
          can_join_groups: true,
          can_read_all_group_messages: false,
          supports_inline_queries: false,
        };
      case "setWebhook":
        this.webhook = { url: String(b.url), secret: b.secret_token === undefined ? undefined : String(b.secret_token) };
        return true;
      case "deleteWebhook":
        this.webhook = undefined;
        return true;
      case "setMyCommands":
        return true;
      case "getUpdates": {
        const offset = Number(b.offset ?? 0);
        const timeout = Math.min(Number(b.timeout ?? 0), 2);
        const pending = () => this.updates.filter((u) => (u.update_id as number) >= offset);
        if (pending().length === 0 && timeout > 0) {
          await new Promise<void>((resolve) => {
            const t = setTimeout(resolve, timeout * 1000);
            this.waiters.push(() => {
              clearTimeout(t);
              resolve();
            });
          });
        }
        // Confirmed updates (below offset) are forgotten, as Telegram does.
        for (let i = this.updates.length - 1; i >= 0; i--) {
          if ((this.updates[i]!.update_id as number) < offset) this.updates.splice(i, 1);
        }
        return pending().slice(0, Number(b.limit ?? 100));
      }
      case "sendMessage":
      case "sendDocument": {
        const text = b.text as string | undefined;
        if (method === "sendMessage" && (!text || telegramTextLength(text, b.parse_mode) > 4096))
          throw new Error("Bad Request: message is too long");
        const message: SentMessage = {
          message_id: this.nextMessageId++,
          chat_id: Number(b.chat_id),
          ...(text !== undefined && { text }),
          ...(b.parse_mode !== undefined && { parse_mode: String(b.parse_mode) }),
          ...(b.reply_markup !== undefined && { reply_markup: parseJson(b.reply_markup) as SentMessage["reply_markup"] }),
          ...(b.document !== undefined && { document: b.document as SentMessage["document"] }),
          ...(b.caption !== undefined && { caption: String(b.caption) }),
          ...(b.reply_parameters !== undefined && {
            reply_to_message_id: (parseJson(b.reply_parameters) as { message_id: number }).message_id,
          }),
          link_preview_disabled: (parseJson(b.link_preview_options) as { is_disabled?: boolean } | undefined)?.is_disabled === true,
          edits: 0,
        };
        this.messages.set(message.message_id, message);
        return {
          message_id: message.message_id,
          date: Math.floor(Date.now() / 1000),
          chat: { id: message.chat_id, type: "private" },
          text,
        };
      }
      case "editMessageText":
      case "editMessageReplyMarkup": {
        const message = this.messages.get(Number(b.message_id));
        if (!message || message.chat_id !== Number(b.chat_id)) throw new Error("message to edit not found");
        if (method === "editMessageText") {
          const text = String(b.text);
          if (telegramTextLength(text, b.parse_mode) > 4096) throw new Error("Bad Request: message is too long");
          message.text = text;
          if (b.parse_mode !== undefined) message.parse_mode = String(b.parse_mode);
        }
        if (b.reply_markup !== undefined) message.reply_markup = parseJson(b.reply_markup) as SentMessage["reply_markup"];
        else if (method === "editMessageText") delete message.reply_markup;
        message.edits++;
        return { message_id: message.message_id, date: 0, chat: { id: message.chat_id, type: "private" }, text: message.text };
      }
      case "answerCallbackQuery": {
        const text = b.text as string | undefined;
        if (text && [...text].length > 200) throw new Error("answer text is too long");
        this.answers.push({ callback_query_id: String(b.callback_query_id), ...(text !== undefined && { text }) });
        return true;
      }
      default:
        throw new Error(`method ${method} is not implemented by the fake`);
    }
  }
}

function parseJson(value: unknown): unknown {
  return typeof value === "string" ? JSON.parse(value) : value;
}

/** JSON or multipart (grammY uses multipart when it uploads a file; its parameters are unquoted). */
async function readBody(req: IncomingMessage): Promise<Record<string, unknown>> {
  const type = req.headers["content-type"] ?? "";
  if (!type.includes("multipart/form-data")) {
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    const raw = Buffer.concat(chunks);
    return raw.length === 0 ? {} : (JSON.parse(raw.toString("utf8")) as Record<string, unknown>);
  }
  const out: Record<string, unknown> = {};
  await new Promise<void>((resolve, reject) => {
    const parser = busboy({ headers: req.headers });
    parser.on("field", (name, value) => {
      out[name] = value;
    });
    parser.on("file", (name, stream, info) => {
      const chunks: Buffer[] = [];
      stream.on("data", (c: Buffer) => chunks.push(c));
      stream.on("end", () => {
        out[name] = { file_name: info.filename, content: Buffer.concat(chunks).toString("utf8") };
      });
    });
    parser.on("close", () => resolve());
    parser.on("error", reject);
    req.pipe(parser);
  });
  // grammY sends a file as `attach://<id>` in the field and the bytes in a part named <id>.
  for (const [key, value] of Object.entries(out)) {
    if (typeof value === "string" && value.startsWith("attach://")) out[key] = out[value.slice("attach://".length)];
  }
  return out;
}

/**
 * What the Bot API counts against the 4096 limit: the text after entity parsing (for HTML: tags
 * removed, the entities Telegram supports decoded), in UTF-16 code units. Written apart from the
 * gateway's own measure on purpose, from the Bot API's documentation.
 */
function telegramTextLength(text: string, parseMode: unknown): number {
  if (parseMode !== "HTML") return text.length;
  const named: Record<string, string> = { lt: "<", gt: ">", amp: "&", quot: '"' };
  return text
    .replace(/<\/?[a-zA-Z][^>]*>/g, "")
    .replace(/&(#x[0-9a-fA-F]+|#\d+|[a-z]+);/g, (m, e: string) =>
      e.startsWith("#x")
        ? String.fromCodePoint(parseInt(e.slice(2), 16))
        : e.startsWith("#")
          ? String.fromCodePoint(Number(e.slice(1)))
          : (named[e] ?? m),
    ).length;
}
