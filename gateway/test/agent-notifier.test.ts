import { test } from "node:test";
import assert from "node:assert/strict";
import { pino } from "pino";
import { AgentNotifier } from "../src/notify/agent-notifier.ts";
import { serveLocal } from "../../test/helpers/local-server.ts";
import { dataUrl, eventually, gatewayFixture } from "../../test/helpers/gateway-fixture.ts";

test("the agent is woken once per finished request, retried after a 500, with no output or secret", async () => {
  const received: Array<{ auth: string | undefined; body: { text: string; mode: string } }> = [];
  let calls = 0;
  const { port } = await serveLocal((req, res) => {
    calls++;
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      if (calls === 1) return void res.writeHead(500).end();
      received.push({ auth: req.headers.authorization, body: JSON.parse(Buffer.concat(chunks).toString()) });
      res.end("{}");
    });
  });
  const notifier = new AgentNotifier({
    url: `http://127.0.0.1:${port}/hooks/wake`,
    token: "hook-token",
    logger: pino({ level: "silent" }),
    retryDelaysMs: [20, 20],
  });
  const fx = gatewayFixture({ extraFollowers: [notifier] });
  const res = await fx.post({ skill_id: "notify-me", skill_url: dataUrl("console.log('SECRETISH OUTPUT')") });
  const id = ((await res.json()) as { request_id: string }).request_id;
  await fx.approvals.decide(id, { approve: true, channel: "test", decidedBy: "test:1" });
  await eventually(() => (received.length === 1 ? true : undefined));
  await fx.feed.idle(); // every delivery (and retry) the notifier started has ended
  assert.equal(received.length, 1, "exactly one wake-up");
  assert.equal(calls, 2, "the 500 was retried");
  assert.equal(received[0]!.auth, "Bearer hook-token");
  assert.equal(received[0]!.body.mode, "now");
  assert.match(
    received[0]!.body.text,
    new RegExp(
      `request ${id} \\(skill "notify-me"\\) completed \\(exit 0, \\d+ ms\\)\\. Read the result with GET /execute/${id}/status\\.`,
    ),
  );
  assert.ok(!received[0]!.body.text.includes("SECRETISH"), "no output in the notification");
});
