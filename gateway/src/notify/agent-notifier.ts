import { retry } from "@oauth3/shared";
import type { Logger } from "pino";
import type { Follower } from "../store/change-feed.js";
import { FINAL_STATUSES, type ExecRequest, type RequestChange } from "../store/store.js";

export interface AgentNotifierOptions {
  url: string;
  token: string;
  logger: Logger;
  retryDelaysMs?: number[];
}

/** The hook's final refusal (a 4xx other than 429): not retried. */
class Refused extends Error {}

/**
 * Tells the agent when a request reaches a final status, the way OpenClaw's gateway webhooks expect
 * (`POST /hooks/wake`, `Authorization: Bearer <token>`, `{"text", "mode": "now"}`), so it need not
 * poll. The text names the request and its outcome, never output and never a secret value; the
 * agent reads the result from the status API. Plain fetch (no shell); retried with backoff.
 */
export class AgentNotifier implements Follower {
  readonly name = "agent-notify";
  private readonly sent = new Set<string>();
  private readonly delays: number[];

  constructor(private readonly options: AgentNotifierOptions) {
    this.delays = options.retryDelaysMs ?? [1000, 5000, 30_000, 120_000];
  }

  /**
   * Followed durably (change-feed.ts): a notification still being retried when the gateway stops
   * is sent after the restart. Resolves when delivered or given up.
   */
  async handle({ request }: RequestChange): Promise<void> {
    if (!FINAL_STATUSES.has(request.status) || this.sent.has(request.id)) return;
    this.sent.add(request.id);
    await this.deliver(request);
  }

  private async deliver(r: ExecRequest): Promise<void> {
    const outcome = r.result
      ? r.result.success
        ? `completed (exit 0, ${r.result.duration} ms)`
        : `failed (${r.result.reason === "exited" ? `exit ${r.result.exitCode}` : r.result.reason})`
      : r.status;
    const text =
      `oauth3-proxy: request ${r.id} (skill ${JSON.stringify(r.skillId.slice(0, 64))}) ${outcome}. ` +
      `Read the result with GET /execute/${r.id}/status.`;
    // A 4xx other than 429 is the hook's final answer; anything else is retried with backoff.
    try {
      await retry(
        async () => {
          const res = await fetch(this.options.url, {
            method: "POST",
            headers: { "content-type": "application/json", authorization: `Bearer ${this.options.token}` },
            body: JSON.stringify({ text, mode: "now" }),
            signal: AbortSignal.timeout(10_000),
          });
          if (res.ok) return;
          if (res.status < 500 && res.status !== 429) throw new Refused(String(res.status));
          throw new Error(`HTTP ${res.status}`);
        },
        { delaysMs: this.delays, retryable: (err) => !(err instanceof Refused) },
      );
    } catch (err) {
      if (err instanceof Refused) {
        this.options.logger.warn({ requestId: r.id, status: Number(err.message) }, "agent notification refused; not retried");
      } else {
        this.options.logger.error({ requestId: r.id, err: String(err) }, "agent notification failed; giving up");
      }
    }
  }
}
