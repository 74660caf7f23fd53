import type { Logger } from "pino";
import type { ApprovalService } from "../approval/approvals.js";
import { GatewayError } from "../errors.js";
import { IdempotencyKeys } from "./idempotency.js";
import { admission, RateLimiter } from "./limits.js";
import { prepareRequest, type ExecuteBody, type IntakeDeps } from "./prepare.js";
import type { ExecRequest, RequestStore } from "../store/store.js";

export interface SubmitDeps {
  store: RequestStore;
  approvals: ApprovalService;
  intake: IntakeDeps;
  limits: { maxPending: number; submissionsPerMinute: number };
  logger: Logger;
}

/** What a submission led to: a new request, its pending twin, or the one an Idempotency-Key names. */
export interface Submission {
  request: ExecRequest;
  outcome: "created" | "merged" | "replayed";
}

/**
 * The intake use case: an agent's submission becomes a stored request (or is refused with a
 * GatewayError). In order, cheapest first: the agent's rate limit, the body's shape, the skill
 * fetched once and checked by the shared rules, the held secret names, then (in one store
 * transaction) the pending cap, the identical-request merge and a covering grant. Approvers learn
 * of it from the store's change event, so a submission never waits on Telegram. A face calls
 * `take` (the rate limit) before it even reads the body, then `submit` with the parsed body
 * (parseExecuteBody: every key judged, none dropped).
 */
export function createSubmit(deps: SubmitDeps) {
  const idempotency = new IdempotencyKeys(deps.store);
  // Rate limits per agent (one shared bucket for unidentified agents when no tokens are configured).
  const limiters = new Map<string, RateLimiter>();
  const limiterFor = (agent: string | undefined) => {
    let limiter = limiters.get(agent ?? "");
    if (!limiter) {
      limiter = new RateLimiter(deps.limits.submissionsPerMinute);
      limiters.set(agent ?? "", limiter);
    }
    return limiter;
  };

  const submitOnce = async (agent: string | undefined, body: ExecuteBody): Promise<Submission & { requestId: string }> => {
    const prepared = await prepareRequest(body, deps.intake);
    const request = agent === undefined ? prepared.request : { ...prepared.request, agent };
    const outcome = await deps.approvals.open(request, prepared.code, admission(request, deps.limits.maxPending));
    if (outcome === "full") {
      throw new GatewayError("limited", "too_many_pending", `${deps.limits.maxPending} requests already await a decision`);
    }
    if (outcome !== "created") return { requestId: outcome.twin.id, request: outcome.twin, outcome: "merged" };
    const stored = deps.store.get(request.id) ?? request;
    deps.logger.info(
      {
        requestId: request.id,
        skillId: request.skillId,
        agent,
        codeSha256: request.codeSha256,
        status: stored.status,
        by: stored.decidedBy,
      },
      "request received",
    );
    return { requestId: request.id, request: stored, outcome: "created" };
  };

  return {
    /** One submission attempt of this agent against its rate limit (cheapest refusal: nothing read yet). */
    take(agent: string | undefined): void {
      if (!limiterFor(agent).take()) {
        throw new GatewayError("limited", "rate_limited", `more than ${deps.limits.submissionsPerMinute} submissions in a minute`);
      }
    },
    async submit(agent: string | undefined, body: ExecuteBody, idempotencyKey?: string): Promise<Submission> {
      if (idempotencyKey === undefined) return submitOnce(agent, body);
      const result = await idempotency.once(agent, idempotencyKey, body, () => submitOnce(agent, body));
      if ("outcome" in result) return result;
      return { request: deps.store.get(result.requestId)!, outcome: "replayed" };
    },
  };
}

export type Submit = ReturnType<typeof createSubmit>;
