import type { Logger } from "pino";
import type { ApprovalChannel } from "./approvals.js";
import { FINAL_STATUSES, type ExecRequest } from "./store.js";

export interface AgentNotifierOptions {
  url: string;
  token: string;
  logger: Logger;
  retryDelaysMs?: number[];
}

/**
 * Tells the agent when a request reaches a final status, the way OpenClaw's gateway webhooks expect
 * (`POST /hooks/wake`, `Authorization: Bearer <token>`, `{"text", "mode": "now"}`), so it need not
 * poll. The text names the request and its outcome, never output and never a secret value; the
 * agent reads the result from the status API. Plain fetch (no shell); retried with backoff.
 */
export class AgentNotifier implements ApprovalChannel {
  readonly name = "agent-notify";
  private readonly sent = new Set<string>();
  private readonly delays: number[];

  constructor(private readonly options: AgentNotifierOptions) {
    this.delays = options.retryDelaysMs ?? [1000, 5000, 30_000, 120_000];
  }

  async announce(): Promise<void> {}

  async update(request: ExecRequest): Promise<void> {
    if (!FINAL_STATUSES.has(request.status) || this.sent.has(request.id)) return;
    this.sent.add(request.id);
    void this.deliver(request);
  }

  private async deliver(r: ExecRequest): Promise<void> {
    const outcome = r.result
      ? r.result.success ? `completed (exit 0, ${r.result.duration} ms)` : `failed (${r.result.reason === "exited" ? `exit ${r.result.exitCode}` : r.result.reason})`
      : r.status;
    const text = `oauth3-proxy: request ${r.id} (skill ${JSON.stringify(r.skillId.slice(0, 64))}) ${outcome}. ` +
      `Read the result with GET /execute/${r.id}/status.`;
    for (let attempt = 0; ; attempt++) {
      try {
        const res = await fetch(this.options.url, {
          method: "POST",
          headers: { "content-type": "application/json", authorization: `Bearer ${this.options.token}` },
          body: JSON.stringify({ text, mode: "now" }),
          signal: AbortSignal.timeout(10_000),
        });
        if (res.ok) return;
        if (res.status < 500 && res.status !== 429) {
          this.options.logger.warn({ requestId: r.id, status: res.status }, "agent notification refused; not retried");
          return;
        }
        throw new Error(`HTTP ${res.status}`);
      } catch (err) {
        const delay = this.delays[attempt];
        if (delay === undefined) {
          this.options.logger.error({ requestId: r.id, err: String(err) }, "agent notification failed; giving up");
          return;
        }
        await new Promise((resolve) => setTimeout(resolve, delay));
      }
    }
  }
}
