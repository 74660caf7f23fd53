import { createHash } from "node:crypto";
import type { Database } from "lmdb";
import { GatewayError } from "../errors.js";
import type { RequestStore } from "../store/store.js";

interface IdempotencyRecord {
  requestId: string;
  bodyHash: string;
  createdAt: number;
}

const KEY = /^[\x21-\x7e]{1,128}$/;
const TTL_MS = 24 * 3600 * 1000;

/**
 * `Idempotency-Key` on POST /execute: an agent that retries (a timeout, a crash) gets the request it
 * already made, never a second card. Scoped per agent; kept 24 h; the same key with a different body
 * is an error. Submissions with the same key are serialised in this process.
 */
export class IdempotencyKeys {
  private readonly db: Database<IdempotencyRecord, string>;
  private readonly inFlight = new Map<string, Promise<unknown>>();

  constructor(private readonly store: RequestStore) {
    this.db = store.subDb<IdempotencyRecord>("idempotency");
  }

  /**
   * Runs `create` once per (agent, key, body); a repeat returns the first request's id. `create`
   * returns the new request's id.
   */
  async once<T extends { requestId: string }>(
    agent: string | undefined,
    key: string,
    body: unknown,
    create: () => Promise<T>,
  ): Promise<T | { requestId: string; replayed: true }> {
    if (!KEY.test(key))
      throw new GatewayError("invalid", "invalid_idempotency_key", "Idempotency-Key must be 1-128 visible ASCII characters");
    const scoped = `${agent ?? ""}\n${key}`;
    const previous = this.inFlight.get(scoped) ?? Promise.resolve();
    const run = previous
      .catch(() => undefined)
      .then(async () => {
        const bodyHash = createHash("sha256").update(JSON.stringify(body)).digest("hex");
        const known = this.db.get(scoped);
        if (known && known.createdAt > Date.now() - TTL_MS && this.store.get(known.requestId)) {
          if (known.bodyHash !== bodyHash) {
            throw new GatewayError("mismatch", "idempotency_key_reuse", "this Idempotency-Key was used with a different request body");
          }
          return { requestId: known.requestId, replayed: true as const };
        }
        const created = await create();
        await this.db.put(scoped, { requestId: created.requestId, bodyHash, createdAt: Date.now() });
        await this.store.flushed;
        return created;
      });
    this.inFlight.set(scoped, run);
    try {
      return await run;
    } finally {
      if (this.inFlight.get(scoped) === run) this.inFlight.delete(scoped);
    }
  }
}
