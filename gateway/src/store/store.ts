import { EventEmitter } from "node:events";
import { open, type Database, type RootDatabase } from "lmdb";
import type { AuditEvent } from "@oauth3/shared";
import { AuditLog, type AuditNote, receivedNote, statusNote } from "./audit-log.js";
import { prepareDbLocation, resolveDbLocation, type DbLocation } from "./db-location.js";
import type { Admission, ExecRequest, InstantDecision, RequestChange, RequestStatus } from "./types.js";

export type { AuditNote } from "./audit-log.js";
export * from "./types.js";

/**
 * Request state in LMDB. Every write is awaited until it is on disk (lmdb-js commits before it
 * flushes, so `flushed` is awaited too) before the caller acknowledges anything. State changes go
 * through `transition`, an atomic compare-and-set: of two concurrent approvals, exactly one wins.
 * LMDB serialises writers across processes too, so a second gateway on the same file cannot break it.
 */
export class RequestStore {
  /** The one event path: every committed, durable change of a request, and failed audit writes. */
  private readonly events = new EventEmitter().setMaxListeners(0);

  private readonly audit: AuditLog;

  private constructor(
    private readonly root: RootDatabase,
    private readonly requests: Database<ExecRequest, string>,
    private readonly code: Database<Buffer, string>,
  ) {
    this.audit = new AuditLog(root.openDB<AuditEvent, number>({ name: "audit", keyEncoding: "uint32" }));
  }

  /**
   * Opens DB_PATH as db-location.ts decides (a directory or one LMDB file), private to the gateway's
   * user. `openLmdb` is lmdb-js's `open` (tests pass one whose writes can be made to fail, as a full
   * disk would).
   */
  static open(path: string | DbLocation, openLmdb: typeof open = open): RequestStore {
    const loc = typeof path === "string" ? resolveDbLocation(path) : path;
    prepareDbLocation(loc);
    const root = openLmdb({ path: loc.lmdbPath, noSubdir: loc.noSubdir, compression: false });
    return new RequestStore(
      root,
      root.openDB<ExecRequest, string>({ name: "requests" }),
      root.openDB<Buffer, string>({ name: "code", encoding: "binary" }),
    );
  }

  async create(request: ExecRequest, code: Buffer): Promise<void> {
    const outcome = await this.admit(request, code);
    if (outcome !== "created") throw new Error(`request ${request.id} was not created`);
  }

  /**
   * Creates a request if `admission`, shown every pending request inside the same write
   * transaction, lets it: check and write are one atomic step, so a cap or an identical-request
   * merge cannot be raced by concurrent submissions. Returns "created", the pending twin to answer
   * with instead, or "full".
   */
  async admit(
    request: ExecRequest,
    code: Buffer,
    admission?: Admission,
    decide?: InstantDecision,
  ): Promise<"created" | "full" | { twin: ExecRequest }> {
    let change: RequestChange | undefined;
    const outcome = await this.audited(() =>
      this.requests.transaction(() => {
        if (this.requests.get(request.id) !== undefined) return "exists" as const;
        if (admission) {
          const pending: ExecRequest[] = [];
          for (const { value } of this.requests.getRange()) if (value.status === "pending") pending.push(value);
          const verdict = admission(pending);
          if (verdict !== undefined) return verdict;
        }
        let seq = this.audit.append(request.id, receivedNote(request));
        const decision = decide?.(request);
        const stored = decision ? { ...request, ...decision } : request;
        if (decision) seq = this.audit.append(request.id, statusNote(request, stored));
        void this.code.put(request.id, code);
        void this.requests.put(request.id, stored);
        change = { request: stored, seq };
        return "created" as const;
      }),
    );
    if (outcome === "exists") throw new Error(`request ${request.id} already exists`);
    if (outcome === "created") {
      await this.root.flushed;
      this.events.emit("change", change);
    }
    return outcome;
  }

  /**
   * One durable write transaction for state other parts own (grants) together with its audit
   * entries: `write` puts into its sub-database and calls `audit` for each entry; both happen or
   * neither. Returns what `write` returned.
   */
  async writeAudited<T>(write: (audit: (requestId: string | undefined, note: AuditNote) => void) => T): Promise<T> {
    const result = await this.audited(() => this.requests.transaction(() => write((id, note) => this.audit.append(id, note))));
    await this.root.flushed;
    return result;
  }

  /** A named sub-database in the same environment, for state other parts own (grants, Telegram). */
  subDb<V>(name: string): Database<V, string> {
    return this.root.openDB<V, string>({ name });
  }

  /** Resolves once every write so far is on disk. */
  get flushed(): Promise<boolean> {
    return this.root.flushed as unknown as Promise<boolean>;
  }

  get(id: string): ExecRequest | undefined {
    return this.requests.get(id);
  }

  getCode(id: string): Buffer | undefined {
    return this.code.get(id);
  }

  /**
   * Moves a request from one of `from` to a new state, atomically and durably. Returns the
   * updated request, or undefined if it was not in an allowed state (someone else won, or it
   * expired) or `guard` said no.
   */
  async transition(
    id: string,
    from: readonly RequestStatus[],
    patch: Partial<ExecRequest> & { status: RequestStatus },
    guard?: (current: ExecRequest) => boolean,
    note?: AuditNote,
  ): Promise<ExecRequest | undefined> {
    const change = await this.audited(() =>
      this.requests.transaction((): RequestChange | undefined => {
        const current = this.requests.get(id);
        if (!current || !from.includes(current.status)) return undefined;
        if (guard && !guard(current)) return undefined;
        const next = { ...current, ...patch };
        const seq = note || next.status !== current.status ? this.audit.append(id, note ?? statusNote(current, next)) : undefined;
        void this.requests.put(id, next);
        return { request: next, previous: current, ...(seq !== undefined && { seq }) };
      }),
    );
    if (change) {
      await this.root.flushed;
      this.events.emit("change", change);
    }
    return change?.request;
  }

  /**
   * Calls `listener` after every committed, durable change (creation included), in commit order.
   * The one event path: cards, notifications, long-polls, streams, metrics and the dispatcher all
   * listen here. Returns the function that unsubscribes.
   */
  onChange(listener: (change: RequestChange) => void): () => void {
    this.events.on("change", listener);
    return () => this.events.off("change", listener);
  }

  /** How many change listeners are registered (tests: nothing a dropped client opened is left). */
  get changeListenerCount(): number {
    return this.events.listenerCount("change");
  }

  /** Calls `listener` when a state change is refused because its audit entry could not be written. */
  onAuditFailure(listener: (err: unknown) => void): () => void {
    this.events.on("audit_failure", listener);
    return () => this.events.off("audit_failure", listener);
  }

  /**
   * Resolves when `id` changes state, after `ms`, or when `signal` aborts (the client went away),
   * whichever comes first; nothing of the wait is left registered afterwards.
   */
  waitForChange(id: string, ms: number, signal?: AbortSignal): Promise<void> {
    return new Promise((resolve) => {
      if (signal?.aborted) return resolve();
      const timer = setTimeout(() => done(), ms);
      const unsubscribe = this.onChange((change) => {
        if (change.request.id === id) done();
      });
      const done = () => {
        clearTimeout(timer);
        unsubscribe();
        signal?.removeEventListener("abort", done);
        resolve();
      };
      signal?.addEventListener("abort", done, { once: true });
    });
  }

  /** Runs a write transaction; a failure (the audit entry could not be written) is announced. */
  private async audited<T>(write: () => Promise<T>): Promise<T> {
    try {
      return await write();
    } catch (thrown) {
      // A failed commit (disk full, I/O error) also rejects lmdb's shared commitError promise:
      // observe it here so it cannot surface as an unhandled rejection that kills the process.
      const commitError = (thrown as { commitError?: Promise<unknown> }).commitError;
      const err = commitError
        ? await commitError.then(
            () => thrown,
            (cause: unknown) => new Error(`the write was not committed: ${String(cause)}`),
          )
        : thrown;
      this.events.emit("audit_failure", err);
      throw err;
    }
  }

  /** The chain's last entry (seq 0 and the zero hash while it is empty). */
  auditHead(): { seq: number; hash: string } {
    return this.audit.head();
  }

  /** Audit entries with seq > after, oldest first. */
  auditPage(after: number, limit: number): AuditEvent[] {
    return this.audit.page(after, limit);
  }

  /** Full scan; fine at sidecar volumes. An index by status comes when volumes need it. */
  list(filter: (r: ExecRequest) => boolean): ExecRequest[] {
    const out: ExecRequest[] = [];
    for (const { value } of this.requests.getRange()) if (filter(value)) out.push(value);
    return out;
  }

  async close(): Promise<void> {
    await this.root.close();
  }
}

/**
 * lmdb-js rejects an internal promise nobody can await when a commit fails (disk full, I/O error;
 * kriszyp/lmdb-js#368). The failure also rejects the transaction its caller awaits, so the
 * request is refused there and recorded as an audit write failure; this duplicate must not kill
 * the process. Any other unhandled rejection still ends it, as Node's default would.
 */
export function exitOnUnhandledRejectionExceptLmdbCommits(name: string): void {
  process.on("unhandledRejection", (reason: unknown) => {
    if (reason instanceof Error && reason.message === "Commit failed (see commitError for details)") return;
    process.stderr.write(`${name}: unhandled rejection: ${reason instanceof Error ? (reason.stack ?? reason.message) : String(reason)}\n`);
    process.exit(1);
  });
}
