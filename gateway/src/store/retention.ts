import type { RequestStore } from "./store.js";

/**
 * Drops the (already redacted) stdout/stderr of requests that finished more than `retentionMs` ago.
 * The record itself stays (who approved what code, when, with which outcome): output is the part
 * most likely to carry something sensitive that redaction missed, so it is kept only as long as an
 * agent plausibly needs to read it.
 */
export async function purgeExpiredOutput(store: RequestStore, now: number, retentionMs: number): Promise<number> {
  const due = store.list(
    (r) => r.result !== undefined && r.outputPurgedAt === undefined && r.completedAt !== undefined && r.completedAt <= now - retentionMs,
  );
  let purged = 0;
  for (const r of due) {
    const done = await store.transition(
      r.id,
      [r.status],
      { status: r.status, result: { ...r.result!, stdout: "", stderr: "" }, outputPurgedAt: now },
      undefined,
      { type: "output_purged" },
    );
    if (done) purged++;
  }
  return purged;
}
