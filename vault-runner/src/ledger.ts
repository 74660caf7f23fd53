import { open, type Database, type RootDatabase } from "lmdb";

export interface LedgerEntry {
  requestId: string;
  codeSha256: string;
  secretNames: string[];
  network: string[];
  decidedBy: string;
  acceptedAt: number;
  finishedAt?: number;
  termination?: string;
  exitCode?: number;
  /** The skill's uid (null: the runner's own). */
  uid?: number | null;
  /** The signed receipt returned to the gateway for this run. */
  receipt?: { payloadJson: string; signature: string; publicKey: string };
}

/**
 * The runner's own durable record of every run it accepted. It enforces "at most once": an id is
 * claimed (and synced to disk) before Deno starts, so a replay, a gateway retry or a runner restart
 * can never run the same request twice. It holds names and hashes only, never values.
 */
export class RunLedger {
  private constructor(
    private readonly root: RootDatabase,
    private readonly runs: Database<LedgerEntry, string>,
  ) {}

  static open(path: string): RunLedger {
    const root = open({ path, compression: false });
    return new RunLedger(root, root.openDB<LedgerEntry, string>({ name: "runs" }));
  }

  /** True if this call claimed the id; false if it was claimed before (now or in any earlier life). */
  async claim(entry: LedgerEntry): Promise<boolean> {
    const claimed = await this.runs.transaction(() => {
      if (this.runs.get(entry.requestId) !== undefined) return false;
      void this.runs.put(entry.requestId, entry);
      return true;
    });
    // With overlappingSync (lmdb-js default on Linux) a commit is visible before it is on disk.
    await this.root.flushed;
    return claimed;
  }

  /** Records the outcome. Committed, but the answer does not wait for its fsync: at-most-once
   *  rests on `claim` alone, and a lost outcome record cannot make a run happen again. */
  async finish(requestId: string, patch: Pick<LedgerEntry, "termination" | "exitCode" | "uid" | "receipt">): Promise<void> {
    await this.runs.transaction(() => {
      const entry = this.runs.get(requestId);
      if (entry) void this.runs.put(requestId, { ...entry, ...patch, finishedAt: Date.now() });
    });
  }

  get(requestId: string): LedgerEntry | undefined {
    return this.runs.get(requestId);
  }

  async close(): Promise<void> {
    await this.root.close();
  }
}
