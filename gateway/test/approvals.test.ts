import { test } from "node:test";
import assert from "node:assert/strict";
import { join } from "node:path";
import { RecordingExecutor } from "../../test/helpers/runner-fixture.ts";
import { dataUrl, eventually, gatewayFixture } from "../../test/helpers/gateway-fixture.ts";
import { tempDir } from "../../test/helpers/tmp.ts";
import { purgeExpiredOutput } from "../src/store/retention.ts";

let submissions = 0;
/** Each call submits a distinct request (identical pending ones would be merged, by design). */
async function submit(fx: ReturnType<typeof gatewayFixture>, code = "console.log(1)") {
  const res = await fx.post({ skill_id: "s", skill_url: dataUrl(code), args: { n: String(++submissions) } });
  assert.equal(res.status, 200);
  return ((await res.json()) as { request_id: string }).request_id;
}

const decide = (approve: boolean) => ({ approve, channel: "test", decidedBy: "test:1" });

test("many concurrent approvals: exactly one transition, exactly one run", async () => {
  const fx = gatewayFixture();
  const id = await submit(fx);
  const outcomes = await Promise.all(Array.from({ length: 10 }, () => fx.approvals.decide(id, decide(true))));
  assert.equal(outcomes.filter((o) => o.outcome === "approved").length, 1);
  assert.equal(outcomes.filter((o) => o.outcome === "already_decided").length, 9);
  const done = await eventually(() => (fx.store.get(id)?.status === "completed" ? fx.store.get(id) : undefined));
  assert.equal(done.decidedBy, "test:1");
  assert.equal(fx.executor.jobs.length, 1);
  assert.equal(fx.executor.jobs[0]!.requestId, id);
});

test("approve after deny changes nothing and runs nothing", async () => {
  const fx = gatewayFixture();
  const id = await submit(fx);
  assert.equal((await fx.approvals.decide(id, decide(false))).outcome, "denied");
  assert.equal((await fx.approvals.decide(id, decide(true))).outcome, "already_decided");
  assert.equal(fx.store.get(id)!.status, "denied");
  await fx.dispatcher.idle(); // an approval would have started a run by now
  assert.equal(fx.executor.jobs.length, 0);
  assert.equal((await fx.approvals.decide("exec_0123456789abcdef", decide(true))).outcome, "not_found");
});

test("expiry fails closed: an expired request can never be approved", async () => {
  let now = Date.now();
  const fx = gatewayFixture({ now: () => now, ttlMs: 60_000 });
  const id = await submit(fx);
  const other = await submit(fx);
  now += 60_001;
  // Decided at the moment of expiry, before any sweep: still refused.
  assert.equal((await fx.approvals.decide(id, decide(true))).outcome, "expired");
  assert.equal(fx.store.get(id)!.status, "expired");
  assert.equal(await fx.approvals.expireDue(), 1);
  assert.equal(fx.store.get(other)!.status, "expired");
  assert.equal((await fx.approvals.decide(other, decide(true))).outcome, "expired");
  await Promise.all([fx.dispatcher.idle(), fx.feed.idle()]);
  assert.equal(fx.executor.jobs.length, 0);
  assert.ok(fx.channel.updates.some((r) => r.id === other && r.status === "expired"));
});

test("operator API: approve once, a second decision is a 409", async () => {
  const fx = gatewayFixture();
  const id = await submit(fx, "// @description says hi\nconsole.log('hi')");
  const pending = (await (await fx.operator.request("/requests?status=pending")).json()) as { requests: Array<{ request_id: string }> };
  assert.deepEqual(
    pending.requests.map((r) => r.request_id),
    [id],
  );
  const shown = (await (await fx.operator.request(`/requests/${id}`)).json()) as { code: string; description: string };
  assert.equal(shown.code, "// @description says hi\nconsole.log('hi')");
  assert.equal(shown.description, "says hi");
  const first = await fx.operator.request(`/requests/${id}/approve`, { method: "POST" });
  assert.equal(first.status, 200);
  const second = await fx.operator.request(`/requests/${id}/deny`, { method: "POST" });
  assert.equal(second.status, 409);
  await eventually(() => (fx.store.get(id)?.status === "completed" ? true : undefined));
  assert.equal(fx.executor.jobs.length, 1);
  // The agent API has no decision route.
  const viaAgent = await fx.app.request(`/requests/${id}/approve`, { method: "POST" });
  assert.equal(viaAgent.status, 404);
});

test("restart: pending stays approvable, in-flight becomes interrupted, never re-run", async () => {
  const dbPath = join(tempDir(), "db");
  const first = gatewayFixture({ dbPath, executor: new RecordingExecutor(), dispatch: false });
  const pendingId = await submit(first);
  const inFlightId = await submit(first);
  const approvedId = await submit(first);
  // Simulate a crash mid-run and a crash between approval and dispatch, by writing the states.
  await first.store.transition(inFlightId, ["pending"], { status: "executing", executedAt: Date.now() });
  await first.store.transition(approvedId, ["pending"], { status: "approved", decidedAt: Date.now() });
  await first.store.close();

  const executor = new RecordingExecutor();
  const second = gatewayFixture({ dbPath, executor });
  await second.dispatcher.recover();
  assert.equal(second.store.get(inFlightId)!.status, "interrupted");
  await eventually(() => (second.store.get(approvedId)?.status === "completed" ? true : undefined));
  assert.deepEqual(
    executor.jobs.map((j) => j.requestId),
    [approvedId],
  );
  assert.equal((await second.approvals.decide(pendingId, decide(true))).outcome, "approved");
  await eventually(() => (second.store.get(pendingId)?.status === "completed" ? true : undefined));
  assert.deepEqual(executor.jobs.map((j) => j.requestId).sort(), [approvedId, pendingId].sort());
});

test("long-poll: ?wait returns on the final transition, or at the deadline", async () => {
  const fx = gatewayFixture({ executor: new RecordingExecutor(300) });
  const id = await submit(fx);
  const t0 = Date.now();
  const timedOut = (await (await fx.app.request(`/execute/${id}/status?wait=0.3`)).json()) as { status: string };
  assert.equal(timedOut.status, "pending");
  assert.ok(Date.now() - t0 >= 290, "waited until the deadline");

  const t1 = Date.now();
  const waiting = fx.app.request(`/execute/${id}/status?wait=30`);
  setTimeout(() => void fx.approvals.decide(id, decide(true)), 100);
  const done = (await (await waiting).json()) as { status: string; result: { success: boolean } };
  const elapsed = Date.now() - t1;
  assert.equal(done.status, "completed");
  assert.ok(done.result.success);
  assert.ok(elapsed >= 350 && elapsed < 5000, `returned after ${elapsed} ms, on the transition`);

  const bad = await fx.app.request(`/execute/${id}/status?wait=forever`);
  assert.equal(bad.status, 400);
  assert.equal(fx.store.changeListenerCount, fx.wiredListeners, "no watcher left behind");
});

test("retention: output of finished requests is dropped after the retention time, the record stays", async () => {
  const fx = gatewayFixture();
  const id = await submit(fx);
  const young = await submit(fx);
  await fx.approvals.decide(id, decide(true));
  const done = await eventually(() => (fx.store.get(id)?.status === "completed" ? fx.store.get(id) : undefined));
  assert.equal(done.result!.stdout, "ok\n");
  const hour = 3600_000;
  assert.equal(await purgeExpiredOutput(fx.store, done.completedAt! + hour - 1, hour), 0, "not yet");
  assert.equal(await purgeExpiredOutput(fx.store, done.completedAt! + hour, hour), 1);
  const view = (await (await fx.app.request(`/execute/${id}/status`)).json()) as Record<string, any>;
  assert.equal(view.status, "completed");
  assert.equal(view.result.stdout, "");
  assert.equal(view.result.success, true);
  assert.equal(view.output_purged_at, done.completedAt! + hour);
  assert.equal(fx.store.get(young)!.status, "pending", "unfinished requests are untouched");
  assert.equal(await purgeExpiredOutput(fx.store, done.completedAt! + 2 * hour, hour), 0, "purged once");
});

test("spam bounds: identical pending requests merge onto one card; pending cap; rate limit", async () => {
  const fx = gatewayFixture({ maxPending: 2 });
  const body = { skill_id: "same", skill_url: dataUrl("console.log('same')"), args: { a: "1" } };
  const first = (await (await fx.post(body)).json()) as Record<string, unknown>;
  const again = (await (await fx.post(body)).json()) as Record<string, unknown>;
  assert.equal(again.request_id, first.request_id);
  assert.equal(again.merged, true);
  assert.equal(fx.channel.announced.length, 1, "one card for both");
  // Different args: a different request.
  const other = await fx.post({ ...body, args: { a: "2" } });
  assert.equal(other.status, 200);
  const capped = await fx.post({ ...body, args: { a: "3" } });
  assert.equal(capped.status, 429);
  assert.equal(((await capped.json()) as { code: string }).code, "too_many_pending");
  assert.equal(fx.store.list(() => true).length, 2);

  const limited = gatewayFixture({ submissionsPerMinute: 2 });
  assert.equal((await limited.post({ ...body, args: { a: "1" } })).status, 200);
  assert.equal((await limited.post({ ...body, args: { a: "2" } })).status, 200);
  const third = await limited.post({ ...body, args: { a: "3" } });
  assert.equal(third.status, 429);
  assert.equal(((await third.json()) as { code: string }).code, "rate_limited");
  assert.equal(limited.store.list(() => true).length, 2);
});

test("the pending cap and the identical-request merge hold under concurrent submissions (one transaction each)", async () => {
  // Before: 30 concurrent POSTs with MAX_PENDING_REQUESTS=3 were all accepted, with 30 cards.
  const fx = gatewayFixture({ maxPending: 3 });
  const distinct = await Promise.all(
    Array.from({ length: 30 }, (_, n) => fx.post({ skill_id: "race", skill_url: dataUrl("console.log('race')"), args: { n: String(n) } })),
  );
  const statuses = distinct.map((r) => r.status);
  assert.equal(statuses.filter((s) => s === 200).length, 3, JSON.stringify(statuses));
  assert.equal(statuses.filter((s) => s === 429).length, 27);
  assert.equal(fx.store.list((r) => r.status === "pending").length, 3);
  await eventually(() => (fx.channel.announced.length >= 3 ? true : undefined));
  assert.equal(fx.channel.announced.length, 3, "three cards");

  const merged = gatewayFixture({ maxPending: 100 });
  const same = { skill_id: "twin", skill_url: dataUrl("console.log('twin')"), args: { a: "1" } };
  const answers = await Promise.all(
    Array.from({ length: 20 }, async () => (await (await merged.post(same)).json()) as Record<string, unknown>),
  );
  assert.equal(new Set(answers.map((a) => a.request_id)).size, 1, "one request for twenty identical submissions");
  assert.equal(answers.filter((a) => a.merged === true).length, 19);
  assert.equal(merged.store.list(() => true).length, 1);
  await eventually(() => (merged.channel.announced.length >= 1 ? true : undefined));
  await new Promise((r) => setImmediate(r));
  assert.equal(merged.channel.announced.length, 1, "one card");
});
