import { test } from "node:test";
import assert from "node:assert/strict";
import { RecordingExecutor } from "../../test/helpers/runner-fixture.ts";
import { dataUrl, eventually, gatewayFixture } from "../../test/helpers/gateway-fixture.ts";

const body = (n: number) => ({ skill_id: "s", skill_url: dataUrl("console.log(1)"), args: { n: String(n) } });
function postWithKey(fx: ReturnType<typeof gatewayFixture>, key: string, b: unknown) {
  return fx.app.request("/execute", {
    method: "POST",
    headers: { "content-type": "application/json", "idempotency-key": key },
    body: JSON.stringify(b),
  });
}

test("Idempotency-Key: retries get the same request and no second card; reuse with another body is an error", async () => {
  const fx = gatewayFixture();
  const first = await postWithKey(fx, "retry-123", body(1));
  const id = ((await first.json()) as { request_id: string }).request_id;
  const again = await postWithKey(fx, "retry-123", body(1));
  assert.equal(again.status, 200);
  assert.equal(again.headers.get("idempotent-replayed"), "true");
  assert.equal(((await again.json()) as { request_id: string }).request_id, id);
  const concurrent = await Promise.all(Array.from({ length: 5 }, () => postWithKey(fx, "burst-1", body(2))));
  const ids = new Set(await Promise.all(concurrent.map(async (r) => ((await r.json()) as { request_id: string }).request_id)));
  assert.equal(ids.size, 1, "five concurrent retries, one request");
  assert.equal(fx.channel.announced.length, 2, "one card per key");
  const reuse = await postWithKey(fx, "retry-123", body(3));
  assert.equal(reuse.status, 422);
  assert.equal(((await reuse.json()) as { code: string }).code, "idempotency_key_reuse");
  const bad = await postWithKey(fx, "bad key", body(4));
  assert.equal(bad.status, 400);
  assert.equal(fx.store.list(() => true).length, 2);
});

test("SSE: the current status at once, then each transition exactly once, then the stream ends", async () => {
  const fx = gatewayFixture({ executor: new RecordingExecutor(150) });
  const id = ((await (await fx.post(body(1))).json()) as { request_id: string }).request_id;
  const res = await fx.app.request(`/execute/${id}/events`);
  assert.equal(res.headers.get("content-type"), "text/event-stream");
  const reader = res.body!.getReader();
  const decoder = new TextDecoder();
  let text = "";
  const read = (async () => {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) return;
      text += decoder.decode(value);
    }
  })();
  await eventually(() => (text.includes("data: ") ? true : undefined)); // subscribed: the first event is out
  await fx.approvals.decide(id, { approve: true, channel: "test", decidedBy: "test:1" });
  await Promise.race([read, new Promise((_, reject) => setTimeout(() => reject(new Error("stream did not end")), 5000))]);
  const statuses = text
    .split("\n")
    .filter((l) => l.startsWith("data: "))
    .map((l) => JSON.parse(l.slice(6)).status);
  assert.deepEqual(statuses, ["pending", "approved", "executing", "completed"]);
  assert.match(text, /^event: status$/m);
  assert.equal(fx.store.changeListenerCount, fx.wiredListeners, "the listener is removed");
  assert.equal((await fx.app.request("/execute/exec_0000000000000000/events")).status, 404);
});
