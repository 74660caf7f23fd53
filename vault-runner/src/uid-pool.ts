import { readdirSync, readFileSync } from "node:fs";

/**
 * Hands each running skill its own uid (and gid of the same number), different from the runner's,
 * the gateway's and every other running skill's. A uid is reused only when no process of that uid
 * remains: stragglers are killed and the uid is checked again before it is handed out.
 * These uids need no /etc/passwd entry, and must have none (checked at start: isolation.ts).
 */
export class UidPool {
  private readonly busy = new Set<number>();
  /** Uids this pool released and verified empty: they need no /proc scan when handed out again. */
  private readonly clean = new Set<number>();

  constructor(
    readonly base: number,
    readonly size: number,
  ) {}

  /** Uids currently handed out (running a skill or being cleaned up). */
  get activeCount(): number {
    return this.busy.size;
  }

  acquire(): number {
    for (let uid = this.base; uid < this.base + this.size; uid++) {
      if (this.busy.has(uid)) continue;
      if (!this.clean.has(uid) && processesOf(uid).length > 0) {
        killAllOf(uid);
        if (processesOf(uid).length > 0) continue; // still dying: try another uid
      }
      this.clean.delete(uid);
      this.busy.add(uid);
      return uid;
    }
    throw new Error("no free skill uid (the run queue should have prevented this)");
  }

  /**
   * At start: kills whatever still runs under the pool's uids (a skill of a runner that died before
   * its death signal was armed). Returns how many processes were found.
   */
  reapAll(): number {
    let found = 0;
    for (let uid = this.base; uid < this.base + this.size; uid++) {
      found += processesOf(uid).length;
      killAllOf(uid);
    }
    return found;
  }

  /** Kills whatever is left under `uid`, then frees it. */
  release(uid: number): void {
    killAllOf(uid);
    if (processesOf(uid).length === 0) this.clean.add(uid);
    this.busy.delete(uid);
  }
}

/** Pids whose real uid is `uid`, from /proc. */
export function processesOf(uid: number): number[] {
  const pids: number[] = [];
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const status = readFileSync(`/proc/${entry}/status`, "utf8");
      const match = /^Uid:\s+(\d+)/m.exec(status);
      if (match && Number(match[1]) === uid) pids.push(Number(entry));
    } catch {
      // the process exited while we looked
    }
  }
  return pids;
}

function killAllOf(uid: number): void {
  for (const pid of processesOf(uid)) {
    try {
      process.kill(pid, "SIGKILL");
    } catch {
      // gone already
    }
  }
}
