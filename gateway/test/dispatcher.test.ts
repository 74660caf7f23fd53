import { test } from "node:test";
import assert from "node:assert/strict";
import { Code, ConnectError } from "@connectrpc/connect";
import { pino } from "pino";
import { Dispatcher } from "../src/runs/dispatcher.ts";
import type { RunnerClient } from "../src/runs/runner-client.ts";
import { dataUrl, eventually, gatewayFixture } from "../../test/helpers/gateway-fixture.ts";

/** The real (in-memory) runner behind a client that first fails `failures` times with `code`. */
function flaky(real: RunnerClient, failures: number, code: Code, cause?: string): { client: RunnerClient; calls: () => number } {
  let calls = 0;
  const client = {
    ...real,
    runSkill: (async (req: Parameters<RunnerClient["runSkill"]>[0], opts?: Parameters<RunnerClient["runSkill"]>[1]) => {
      calls++;
      // `cause`: the socket error connect-node reports (ENOENT when the socket is gone, as measured).
      if (calls <= failures)
        throw new ConnectError("injected", code, undefined, undefined, cause && Object.assign(new Error(cause), { code: cause }));
      return real.runSkill(req, opts);
    }) as RunnerClient["runSkill"],
  } as RunnerClient;
  return { client, calls: () => calls };
}

async function approvedRequest(fx: ReturnType<typeof gatewayFixture>): Promise<string> {
  const res = await fx.post({ skill_id: "d", skill_url: dataUrl(`console.log(${Math.random()})`) });
  const id = ((await res.json()) as { request_id: string }).request_id;
  await fx.store.transition(id, ["pending"], { status: "approved", decidedAt: Date.now(), decidedBy: "test" });
  return id;
}

test("an unreachable runner is retried with backoff, then the run happens once", async () => {
  const fx = gatewayFixture({ dispatch: false });
  const { client, calls } = flaky(fx.runner, 2, Code.Internal, "ENOENT");
  const dispatcher = new Dispatcher({ store: fx.store, runner: client, logger: pino({ level: "silent" }), retryDelaysMs: [10, 10, 10] });
  const id = await approvedRequest(fx);
  dispatcher.dispatch(id);
  await eventually(() => (fx.store.get(id)?.status === "completed" ? true : undefined));
  assert.equal(calls(), 3);
  assert.equal(fx.executor.jobs.length, 1);
});

test("retries run out: failed with the reason; any other refusal is not retried", async () => {
  const fx = gatewayFixture({ dispatch: false });
  const gone = flaky(fx.runner, 99, Code.Unavailable, "ECONNREFUSED");
  const d1 = new Dispatcher({ store: fx.store, runner: gone.client, logger: pino({ level: "silent" }), retryDelaysMs: [5, 5] });
  const a = await approvedRequest(fx);
  d1.dispatch(a);
  const failed = await eventually(() => (fx.store.get(a)?.status === "failed" ? fx.store.get(a) : undefined));
  assert.match(failed.error!, /^runner unreachable, the skill never started: injected/);
  assert.equal(gone.calls(), 3);

  const refused = flaky(fx.runner, 99, Code.InvalidArgument);
  const d2 = new Dispatcher({ store: fx.store, runner: refused.client, logger: pino({ level: "silent" }), retryDelaysMs: [5, 5] });
  const b = await approvedRequest(fx);
  d2.dispatch(b);
  const bFailed = await eventually(() => (fx.store.get(b)?.status === "failed" ? fx.store.get(b) : undefined));
  assert.match(bFailed.error!, /^runner refused, the skill did not run/);
  assert.equal(refused.calls(), 1);

  const replay = flaky(fx.runner, 99, Code.AlreadyExists);
  const d3 = new Dispatcher({ store: fx.store, runner: replay.client, logger: pino({ level: "silent" }) });
  const c = await approvedRequest(fx);
  d3.dispatch(c);
  const interrupted = await eventually(() => (fx.store.get(c)?.status === "interrupted" ? fx.store.get(c) : undefined));
  assert.match(interrupted.error!, /already accepted/);
  assert.equal(fx.executor.jobs.length, 0);
});

test("a runner that stops answering mid-run (what kill -9 gives: CANCEL on the stream) ends interrupted, never retried", async () => {
  const fx = gatewayFixture({ dispatch: false });
  for (const [code, cause] of [
    [Code.Canceled, undefined],
    [Code.Unavailable, "ECONNRESET"],
    [Code.Internal, undefined],
    [Code.DeadlineExceeded, undefined],
  ] as const) {
    const died = flaky(fx.runner, 99, code, cause);
    const d = new Dispatcher({ store: fx.store, runner: died.client, logger: pino({ level: "silent" }), retryDelaysMs: [5, 5] });
    const id = await approvedRequest(fx);
    d.dispatch(id);
    const r = await eventually(() => (fx.store.get(id)?.status === "interrupted" ? fx.store.get(id) : undefined));
    assert.match(r.error!, /stopped answering during the run .*may have run.*will not be run again/, Code[code]);
    assert.equal(died.calls(), 1, `${Code[code]} is not retried`);
  }
  assert.equal(fx.executor.jobs.length, 0);
});
