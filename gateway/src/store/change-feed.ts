import type { Database } from "lmdb";
import type { Logger } from "pino";
import type { RequestChange, RequestStore } from "./store.js";

/** Something that acts on request changes: a card in Telegram, a notification, a log line. */
export interface Follower {
  readonly name: string;
  /**
   * Handles one change. Changes of one request reach it in order, one at a time; different
   * requests' changes may overlap. On catch-up after a restart `previous` is absent and `request`
   * is the current state, so a handler acts on the state it is given, not on a transition.
   */
  handle(change: RequestChange): Promise<void>;
}

/**
 * The store's change events delivered to followers, and (for followers that must not miss one:
 * cards, agent notifications) caught up after a restart. A durable follower's cursor is the audit
 * sequence up to which every change has been handled, kept in the gateway's LMDB; on start every
 * request the audit chain names after the cursor is handed to it once in its current state. A
 * follower seen for the first time starts at the chain's head (it is not flooded with history).
 * Delivery is at least once across a crash: a follower makes a repeat harmless (a card that exists
 * is edited, not posted again).
 */
export class ChangeFeed {
  private readonly cursors: Database<number, string>;
  private readonly running = new Set<Promise<void>>();
  private readonly unsubscribe: Array<() => void> = [];

  constructor(
    private readonly store: RequestStore,
    private readonly logger: Logger,
  ) {
    this.cursors = store.subDb<number>("feed_cursors");
  }

  /** Subscribes `follower` to every change from now on; `durable`: first catches up after its cursor. */
  follow(follower: Follower, options: { durable?: boolean } = {}): void {
    const queues = new Map<string, Promise<void>>();
    const open = new Set<number>(); // audit seqs handed over and not yet handled
    let seen = 0;
    let cursor = options.durable ? this.cursors.get(follower.name) : undefined;
    if (options.durable && cursor === undefined) {
      cursor = this.store.auditHead().seq;
      this.save(follower.name, cursor);
    }
    const advance = () => {
      if (!options.durable) return;
      const next = open.size > 0 ? Math.min(...open) - 1 : seen;
      if (next > (cursor ?? 0)) {
        cursor = next;
        this.save(follower.name, next);
      }
    };
    const deliver = (change: RequestChange) => {
      const id = change.request.id;
      if (change.seq !== undefined) {
        open.add(change.seq);
        seen = Math.max(seen, change.seq);
      }
      const job = (queues.get(id) ?? Promise.resolve())
        .then(() => follower.handle(change))
        .catch((err: unknown) => this.logger.error({ requestId: id, follower: follower.name, err: String(err) }, "change handler failed"))
        .finally(() => {
          if (change.seq !== undefined) open.delete(change.seq);
          if (queues.get(id) === job) queues.delete(id);
          advance();
        });
      queues.set(id, job);
      this.track(job);
    };
    // Live first, then the catch-up read: a change committed in between reaches the follower
    // (twice at most, which it tolerates), never not at all.
    this.unsubscribe.push(this.store.onChange(deliver));
    if (options.durable) for (const change of this.missed(cursor ?? 0)) deliver(change);
  }

  /** Resolves once every change handed out so far (and whatever those handlers set off) is handled. */
  async idle(): Promise<void> {
    while (this.running.size > 0) await Promise.allSettled([...this.running]);
  }

  /** No more deliveries; waits at most `ms` for the handlers already running. */
  async stop(ms: number): Promise<void> {
    for (const off of this.unsubscribe.splice(0)) off();
    await Promise.race([this.idle(), new Promise((resolve) => setTimeout(resolve, ms).unref())]);
  }

  /** Each request the chain names after `after`, once, in its current state, oldest change first. */
  private missed(after: number): RequestChange[] {
    const last = new Map<string, number>();
    for (let page = this.store.auditPage(after, 1000); page.length > 0; page = this.store.auditPage(page.at(-1)!.seq, 1000)) {
      for (const event of page) {
        if (event.requestId === undefined) continue;
        last.delete(event.requestId); // re-insert: Map order follows the latest change
        last.set(event.requestId, event.seq);
      }
    }
    const out: RequestChange[] = [];
    for (const [id, seq] of last) {
      const request = this.store.get(id);
      if (request) out.push({ request, seq });
    }
    return out;
  }

  private save(name: string, seq: number): void {
    this.cursors
      .put(name, seq)
      .catch((err: unknown) =>
        this.logger.error(
          { follower: name, err: String(err) },
          "could not record a follower's position; a restart repeats some changes to it",
        ),
      );
  }

  private track(job: Promise<void>): void {
    this.running.add(job);
    void job.finally(() => this.running.delete(job));
  }
}
