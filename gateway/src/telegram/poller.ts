import { GrammyError, type Bot } from "grammy";
import type { Update } from "grammy/types";
import type { Database } from "lmdb";
import type { Logger } from "pino";

export type PollerState = "starting" | "polling" | "conflict" | "unauthorized" | "error" | "stopped";

/**
 * Long polling with the offset kept in LMDB, so a restarted gateway neither loses nor replays
 * confirmed updates (a replayed press would be harmless anyway: decisions are compare-and-set).
 * 409 Conflict (another process polls with this token, e.g. the agent's own bot, or a webhook is
 * set) and 401 (bad token) are reported clearly; the token itself is never logged.
 */
export class TelegramPoller {
  state: PollerState = "starting";
  private readonly abort = new AbortController();
  private running?: Promise<void>;

  constructor(
    private readonly bot: Bot,
    private readonly db: Database<number, string>,
    private readonly logger: Logger,
    private readonly backoffMs = [1000, 2000, 5000, 10_000, 30_000],
  ) {}

  start(): void {
    this.running = this.loop();
  }

  async stop(): Promise<void> {
    this.abort.abort();
    await this.running;
    this.state = "stopped";
  }

  private async loop(): Promise<void> {
    let failures = 0;
    let offset = this.db.get("offset") ?? 0;
    while (!this.abort.signal.aborted) {
      let updates: Update[];
      try {
        // grammY types its signal parameter with the abort-controller polyfill; Node's is compatible.
        const signal = this.abort.signal as unknown as Parameters<Bot["init"]>[0];
        if (!this.bot.isInited()) await this.bot.init(signal);
        updates = await this.bot.api.getUpdates({ offset, timeout: 25, allowed_updates: ["message", "callback_query"] }, signal);
        if (this.state !== "polling") this.logger.info("telegram: polling for updates");
        this.state = "polling";
        failures = 0;
      } catch (err) {
        if (this.abort.signal.aborted) break;
        this.report(err);
        await this.sleep(this.backoffMs[Math.min(failures++, this.backoffMs.length - 1)]!);
        continue;
      }
      for (const update of updates) {
        try {
          await this.bot.handleUpdate(update);
        } catch (err) {
          this.logger.error({ updateId: update.update_id, err: String(err) }, "telegram update failed");
        }
        offset = update.update_id + 1;
        try {
          await this.db.put("offset", offset);
        } catch (err) {
          // A full disk: polling goes on from the offset in memory; after a restart Telegram may
          // deliver these updates again, and every press is a compare-and-set anyway.
          this.logger.error({ err: String(err) }, "telegram: could not store the update offset");
        }
      }
    }
  }

  private report(err: unknown): void {
    const code = err instanceof GrammyError ? err.error_code : undefined;
    const previous = this.state;
    if (code === 409) {
      this.state = "conflict";
      if (previous !== "conflict") {
        this.logger.error(
          "telegram: 409 Conflict: another process is already receiving updates for this bot token " +
            "(another poller such as the agent's own bot, or a webhook is set). Give oauth3-proxy its " +
            "own bot (@BotFather /newbot). Retrying with backoff.",
        );
      }
    } else if (code === 401 || code === 404) {
      this.state = "unauthorized";
      if (previous !== "unauthorized") {
        this.logger.error(`telegram: the Bot API rejected the bot token (${code}). Check TELEGRAM_BOT_TOKEN (the value is not logged).`);
      }
    } else {
      this.state = "error";
      this.logger.warn({ err: err instanceof Error ? err.message : String(err) }, "telegram: polling failed, retrying");
    }
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const t = setTimeout(resolve, ms);
      this.abort.signal.addEventListener(
        "abort",
        () => {
          clearTimeout(t);
          resolve();
        },
        { once: true },
      );
    });
  }
}
