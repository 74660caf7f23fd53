import type { ExecRequest, RequestStore } from "./store.js";

/** At most `limit` events in any `windowMs`. In memory: a restart resets it (the pending cap does not). */
export class RateLimiter {
  private readonly times: number[] = [];

  constructor(
    private readonly limit: number,
    private readonly windowMs = 60_000,
  ) {}

  take(now = Date.now()): boolean {
    while (this.times.length > 0 && this.times[0]! <= now - this.windowMs) this.times.shift();
    if (this.times.length >= this.limit) return false;
    this.times.push(now);
    return true;
  }
}

/**
 * A pending request asking for exactly the same run (code, secrets, hosts, args, timeout, skill id):
 * the agent gets that one back instead of a second card for the approver to wade through.
 */
export function findIdenticalPending(store: RequestStore, r: ExecRequest, now = Date.now()): ExecRequest | undefined {
  const same = (a: unknown, b: unknown) => JSON.stringify(a) === JSON.stringify(b);
  return store.list(
    (p) =>
      p.status === "pending" &&
      p.expiresAt > now &&
      p.codeSha256 === r.codeSha256 &&
      p.agent === r.agent &&
      p.skillId === r.skillId &&
      p.timeoutSeconds === r.timeoutSeconds &&
      same(p.secretNames, r.secretNames) &&
      same(p.network, r.network) &&
      same(p.args, r.args),
  )[0];
}
