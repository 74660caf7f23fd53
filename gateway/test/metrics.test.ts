import { test } from "node:test";
import assert from "node:assert/strict";
import { pino } from "pino";
import { createMetrics } from "../src/operator/metrics.ts";
import { createOperatorApp } from "../src/operator/operator-api.ts";
import { dataUrl, eventually, gatewayFixture } from "../../test/helpers/gateway-fixture.ts";

test("operator /metrics: statuses, approval latency, pending, runner queue, audit write failures", async () => {
  const fx = gatewayFixture();
  const metrics = createMetrics(fx.store, async () => ({ activeRuns: 2, queuedRuns: 5 }));
  const operator = createOperatorApp({ store: fx.store, approvals: fx.approvals, logger: pino({ level: "silent" }), metrics });
  const submit = async (n: number) =>
    (
      (await (await fx.post({ skill_id: "m", skill_url: dataUrl("console.log(1)"), args: { n: String(n) } })).json()) as {
        request_id: string;
      }
    ).request_id;
  const a = await submit(1);
  await submit(2);
  await fx.approvals.decide(a, { approve: true, channel: "test", decidedBy: "t" });
  await eventually(() => (fx.store.get(a)?.status === "completed" ? true : undefined));
  const pendingId = await submit(3);
  fx.faults.auditWrite = () => {
    throw new Error("simulated");
  };
  await assert.rejects(fx.approvals.decide(pendingId, { approve: false, channel: "test", decidedBy: "t" }));
  fx.faults.auditWrite = undefined;

  const res = await operator.request("/metrics");
  assert.equal(res.status, 200);
  assert.match(res.headers.get("content-type") ?? "", /text\/plain/);
  const text = await res.text();
  assert.match(text, /^oauth3_requests_total\{status="completed"\} 1$/m);
  assert.match(text, /^oauth3_requests_total\{status="executing"\} 1$/m);
  assert.match(text, /^oauth3_approval_latency_seconds_count\{decision="approved"\} 1$/m);
  assert.match(text, /^oauth3_run_duration_seconds_count\{reason="exited"\} 1$/m);
  assert.match(text, /^oauth3_pending_requests 2$/m);
  assert.match(text, /^oauth3_runner_queue\{state="queued"\} 5$/m);
  assert.match(text, /^oauth3_audit_write_failures_total 1$/m);
  assert.match(text, /^oauth3_gateway_process_resident_memory_bytes \d+/m);
  assert.equal((await fx.app.request("/metrics")).status, 404, "not on the agent port");
});
