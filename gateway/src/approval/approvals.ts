import type { Logger } from "pino";
import type { Grant, GrantStore } from "./grants.js";
import type { Admission, ExecRequest, RequestStore } from "../store/store.js";

export interface Decision {
  approve: boolean;
  /** "operator", "telegram", "grant" */
  channel: string;
  /** Who decided, e.g. "operator:local" or "telegram:123". Recorded and shown, never trusted blindly
   *  by the runner. */
  decidedBy: string;
  /**
   * With an approval: also allow identical requests (same agent, skill id, code, secrets, hosts and
   * timeout) for this long, through a grant (grants.ts).
   */
  grantTtlMs?: number;
}

export type DecisionOutcome =
  | { outcome: "approved"; request: ExecRequest; grant?: Grant }
  | { outcome: "denied"; request: ExecRequest }
  | { outcome: "not_found" }
  | { outcome: "expired" | "already_decided"; request: ExecRequest };

export interface ApprovalServiceDeps {
  store: RequestStore;
  logger: Logger;
  /** Active grants auto-approve identical requests (each still reported through the channels). */
  grants?: GrantStore;
  now?: () => number;
}

/**
 * The one place where a request can leave `pending`, and the one that creates grants. It only
 * decides: what follows a decision (the run, the card's edit, the agent's notification) listens to
 * the store's change events (store.onChange, change-feed.ts).
 */
export class ApprovalService {
  private readonly now: () => number;

  constructor(private readonly deps: ApprovalServiceDeps) {
    this.now = deps.now ?? Date.now;
  }

  /**
   * Stores a new request, judged by `admission` (cap, identical pending twin) in the same
   * transaction; an active grant that covers it approves it in that transaction too, so it is
   * never shown as pending. The approvers see it through the store's change event.
   */
  async open(request: ExecRequest, code: Buffer, admission?: Admission): ReturnType<RequestStore["admit"]> {
    const grants = this.deps.grants;
    return this.deps.store.admit(
      request,
      code,
      admission,
      grants &&
        ((r) => {
          const at = this.now();
          const grant = grants.findFor(r, at);
          return grant && { status: "approved", decidedAt: at, decidedBy: `grant:${grant.id}`, decisionChannel: "grant" };
        }),
    );
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
      if (!decision.approve) return { outcome: "denied", request: updated };
      if (decision.grantTtlMs === undefined || !this.deps.grants) return { outcome: "approved", request: updated };
      const grant = await this.deps.grants.create(updated, decision.decidedBy, decision.grantTtlMs, at);
      this.deps.logger.info({ grantId: grant.id, requestId: id, by: decision.decidedBy }, "grant created");
      return { outcome: "approved", request: updated, grant };
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
      this.deps.logger.error(
        { failed, err: String(firstError) },
        "expiry sweep could not record every expiry (retried next sweep; expired requests cannot be approved meanwhile)",
      );
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
    if (expired) this.deps.logger.info({ requestId: request.id }, "request expired without a decision");
    return expired;
  }
}
