import type { Logger } from "pino";
import type { Dispatcher } from "./dispatcher.js";
import type { GrantStore } from "./grants.js";
import type { ExecRequest, RequestStore } from "./store.js";

/**
 * Where humans see requests and decide. The local operator channel is the first; Telegram plugs in
 * the same way. A channel only announces and updates: every decision goes through
 * `ApprovalService.decide`, the single place where a request can leave `pending`.
 */
export interface ApprovalChannel {
  readonly name: string;
  /** A new request awaits a decision. */
  announce(request: ExecRequest): Promise<void>;
  /** The request changed state (decided, expired, finished): update what the approver sees. */
  update(request: ExecRequest): Promise<void>;
}

export interface Decision {
  approve: boolean;
  /** "operator", "telegram", "grant" */
  channel: string;
  /** Who decided, e.g. "operator:local" or "telegram:123". Recorded and shown, never trusted blindly
   *  by the runner. */
  decidedBy: string;
}

export type DecisionOutcome =
  | { outcome: "approved" | "denied"; request: ExecRequest }
  | { outcome: "not_found" }
  | { outcome: "expired" | "already_decided"; request: ExecRequest };

export interface ApprovalServiceDeps {
  store: RequestStore;
  dispatcher: Dispatcher;
  channels: ApprovalChannel[];
  logger: Logger;
  /** Active grants auto-approve identical requests (each still reported through the channels). */
  grants?: GrantStore;
  now?: () => number;
}

export class ApprovalService {
  private readonly now: () => number;

  constructor(private readonly deps: ApprovalServiceDeps) {
    this.now = deps.now ?? Date.now;
  }

  /** A new request: approved by an active grant if one covers it, else shown to the approvers. */
  async announce(request: ExecRequest): Promise<void> {
    const grant = this.deps.grants?.findFor(request, this.now());
    if (grant) {
      const result = await this.decide(request.id, { approve: true, channel: "grant", decidedBy: `grant:${grant.id}` });
      if (result.outcome === "approved") return;
    }
    await this.notify(request, "announce");
  }

  /**
   * One atomic, durable compare-and-set from `pending` (and unexpired) to approved/denied. Of any
   * number of concurrent or repeated decisions, exactly one takes effect; the rest get
   * `already_decided` or `expired`. An approval is dispatched only after it is on disk.
   */
  async decide(id: string, decision: Decision): Promise<DecisionOutcome> {
    const at = this.now();
    const updated = await this.deps.store.transition(
      id,
      ["pending"],
      {
        status: decision.approve ? "approved" : "denied",
        decidedAt: at,
        decidedBy: decision.decidedBy,
        decisionChannel: decision.channel,
      },
      (current) => current.expiresAt > at,
    );
    if (updated) {
      this.deps.logger.info(
        { requestId: id, status: updated.status, by: decision.decidedBy, channel: decision.channel },
        "decision recorded",
      );
      if (decision.approve) this.deps.dispatcher.dispatch(id);
      await this.notify(updated, "update");
      return { outcome: decision.approve ? "approved" : "denied", request: updated };
    }
    const current = this.deps.store.get(id);
    if (!current) return { outcome: "not_found" };
    if (current.status === "pending") {
      const expired = await this.expire(current);
      return { outcome: "expired", request: expired ?? current };
    }
    return {
      outcome: current.status === "expired" ? "expired" : "already_decided",
      request: current,
    };
  }

  /**
   * Fails closed: pending requests past their expiry become `expired` and can never run. Never
   * rejects: a write that fails (a full disk) is logged and retried at the next sweep; the request
   * cannot be approved meanwhile (`decide` checks the expiry itself).
   */
  async expireDue(): Promise<number> {
    const at = this.now();
    const due = this.deps.store.list((r) => r.status === "pending" && r.expiresAt <= at);
    let count = 0;
    let failed = 0;
    let firstError: unknown;
    for (const request of due) {
      try {
        if (await this.expire(request)) count++;
      } catch (err) {
        failed++;
        firstError ??= err;
      }
    }
    if (failed > 0) {
      this.deps.logger.error({ failed, err: String(firstError) }, "expiry sweep could not record every expiry (retried next sweep; expired requests cannot be approved meanwhile)");
    }
    return count;
  }

  private async expire(request: ExecRequest): Promise<ExecRequest | undefined> {
    const at = this.now();
    const expired = await this.deps.store.transition(
      request.id,
      ["pending"],
      { status: "expired", decidedAt: at, error: "approval expired" },
      (current) => current.expiresAt <= at,
    );
    if (expired) {
      this.deps.logger.info({ requestId: request.id }, "request expired without a decision");
      await this.notify(expired, "update");
    }
    return expired;
  }

  async notify(request: ExecRequest, kind: "announce" | "update"): Promise<void> {
    for (const channel of this.deps.channels) {
      try {
        await channel[kind](request);
      } catch (err) {
        this.deps.logger.error(
          { requestId: request.id, channel: channel.name, err: String(err) },
          `approval channel ${kind} failed`,
        );
      }
    }
  }
}

/** The operator on the machine: requests are logged; decisions arrive over the operator socket. */
export class LocalOperatorChannel implements ApprovalChannel {
  readonly name = "operator";

  constructor(private readonly logger: Logger) {}

  async announce(request: ExecRequest): Promise<void> {
    this.logger.info(
      {
        requestId: request.id,
        skillId: request.skillId,
        codeSha256: request.codeSha256,
        secrets: request.secretNames,
        network: request.network,
        expiresAt: new Date(request.expiresAt).toISOString(),
      },
      `awaiting approval: npm run oauth3 -- show ${request.id}, then approve or deny`,
    );
  }

  async update(): Promise<void> {
    // The operator reads state with `oauth3 show`; nothing to edit.
  }
}
