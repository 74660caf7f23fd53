import type { Admission, ExecRequest } from "../store/store.js";

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
 * Open long-polls and event streams: at most `total`, and at most `perAgent` for one agent (all
 * unidentified agents share one allowance). `enter` returns the release function, or undefined
 * when a bound is reached.
 */
export class WaiterLimits {
  private open = 0;
  private readonly byAgent = new Map<string, number>();

  constructor(private readonly bounds: { total: number; perAgent: number }) {}

  get openCount(): number {
    return this.open;
  }

  enter(agent: string | undefined): (() => void) | undefined {
    const key = agent ?? "";
    const mine = this.byAgent.get(key) ?? 0;
    if (this.open >= this.bounds.total || mine >= this.bounds.perAgent) return undefined;
    this.open++;
    this.byAgent.set(key, mine + 1);
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.open--;
      const left = (this.byAgent.get(key) ?? 1) - 1;
      if (left === 0) this.byAgent.delete(key);
      else this.byAgent.set(key, left);
    };
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
