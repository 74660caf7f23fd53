/**
 * At most `concurrency` runs at once, at most `maxQueued` waiting. A run beyond that is refused
 * at admission (before anything is claimed or started) so the caller can say so clearly.
 * Waiting runs are served round-robin between queue keys (the agent a run is attributed to), FIFO
 * within one key: an agent with a grant and a burst of runs cannot starve another agent's run,
 * which waits behind at most one run of each other agent.
 */
export class RunQueue {
  private active = 0;
  private queued = 0;
  /** Waiting runs per key; a key's place in the rotation is its insertion order (re-added at the back). */
  private readonly waiting = new Map<string, Array<() => void>>();

  constructor(
    readonly concurrency: number,
    readonly maxQueued: number,
  ) {}

  get activeCount(): number {
    return this.active;
  }

  get queuedCount(): number {
    return this.queued;
  }

  /** Returns a slot-acquiring promise, or undefined when the queue is full. */
  admit(key = ""): Promise<() => void> | undefined {
    if (this.active < this.concurrency) {
      this.active++;
      return Promise.resolve(this.releaser());
    }
    if (this.queued >= this.maxQueued) return undefined;
    return new Promise((resolve) => {
      const start = () => {
        this.active++;
        resolve(this.releaser());
      };
      const line = this.waiting.get(key);
      if (line) line.push(start);
      else this.waiting.set(key, [start]);
      this.queued++;
    });
  }

  private releaser(): () => void {
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.active--;
      this.next();
    };
  }

  /** Starts the first waiting run of the key at the front of the rotation; that key goes to the back. */
  private next(): void {
    const first = this.waiting.entries().next();
    if (first.done) return;
    const [key, line] = first.value;
    const start = line.shift()!;
    this.waiting.delete(key);
    if (line.length > 0) this.waiting.set(key, line);
    this.queued--;
    start();
  }
}
