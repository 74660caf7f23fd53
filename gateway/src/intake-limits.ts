import type { Admission, ExecRequest } from "./store.js";

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
 * The admission rule for a new request, judged inside the store's write transaction (so that of
 * concurrent submissions, none sees a count or a twin another has already changed): a pending,
 * unexpired request asking for exactly the same run (agent, code, secrets, hosts, args, timeout,
 * skill id) is returned instead of a second card; else, with `maxPending` of this agent's requests
 * already pending, the request is refused.
 */
export function admission(r: ExecRequest, maxPending: number, now = Date.now()): Admission {
  const same = (a: unknown, b: unknown) => JSON.stringify(a) === JSON.stringify(b);
  return (pending) => {
    const twin = pending.find(
      (p) =>
        p.expiresAt > now &&
        p.codeSha256 === r.codeSha256 &&
        p.agent === r.agent &&
        p.skillId === r.skillId &&
        p.timeoutSeconds === r.timeoutSeconds &&
        same(p.secretNames, r.secretNames) &&
        same(p.network, r.network) &&
        same(p.args, r.args),
    );
    if (twin) return { twin };
    if (pending.filter((p) => p.agent === r.agent).length >= maxPending) return "full";
    return undefined;
  };
}
