/**
 * What an agent can hold open on the agent port, over a real HTTP server: a dropped long-poll
 * (?wait) or event stream leaves nothing registered, and open ones are capped per agent and in
 * total. Before: a waiter stayed registered up to 60 s after its client left (40,000 dropped
 * requests took the gateway from 95 to 555 MiB).
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { connect } from "node:net";
import type { Server } from "node:http";
import { createAdaptorServer } from "@hono/node-server";
import { newAgentToken } from "@oauth3/shared";
import { createAgentRegistry } from "../src/http/agent-auth.ts";
import { dataUrl, eventually, gatewayFixture } from "../../test/helpers/gateway-fixture.ts";

async function serve(fx: ReturnType<typeof gatewayFixture>): Promise<{ port: number; close: () => void }> {
  const server = createAdaptorServer({ fetch: fx.app.fetch }) as Server;
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", () => r()));
  return {
    port: (server.address() as { port: number }).port,
    close: () => {
      server.closeAllConnections();
      server.close();
    },
  };
}

/** Sends a GET and resolves once the request is written; the socket is returned open. */
function rawGet(port: number, path: string, token?: string) {
  const socket = connect(port, "127.0.0.1");
  let answer = "";
  socket.on("data", (d: Buffer) => (answer += d.toString("latin1")));
  socket.on("error", () => {});
  socket.write(`GET ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\n${token ? `Authorization: Bearer ${token}\r\n` : ""}\r\n`);
  return { socket, answer: () => answer };
}

const listeners = (fx: ReturnType<typeof gatewayFixture>) => fx.store.changeListenerCount;

test("dropped long-polls and event streams leave nothing registered", async () => {
  const fx = gatewayFixture();
  const { port, close } = await serve(fx);
  try {
    const id = ((await (await fx.post({ skill_id: "slow", skill_url: dataUrl("console.log(1)") })).json()) as { request_id: string })
      .request_id;
    const base = listeners(fx);
    for (let round = 0; round < 10; round++) {
      const batch = Array.from({ length: 20 }, (_, n) => rawGet(port, n % 2 ? `/execute/${id}/status?wait=60` : `/execute/${id}/events`));
      await eventually(() => (listeners(fx) >= base + 20 ? true : undefined), 5000);
      for (const { socket } of batch) socket.destroy();
      // Each wait ends when its client leaves, not 60 s later.
      await eventually(() => (listeners(fx) === base ? true : undefined), 3000);
    }
    // The slots came back too: a full allowance of new waits is accepted.
    const again = Array.from({ length: 20 }, () => rawGet(port, `/execute/${id}/status?wait=60`));
    await eventually(() => (listeners(fx) === base + 20 ? true : undefined), 5000);
    for (const { socket } of again) socket.destroy();
  } finally {
    close();
  }
});

test("open waits are capped per agent and in total; other agents keep theirs", async () => {
  const alice = newAgentToken("alice");
  const bob = newAgentToken("bob");
  const agents = createAgentRegistry(new Map([alice.entry.split(":") as [string, string], bob.entry.split(":") as [string, string]]));
  const fx = gatewayFixture({ agents, waiters: { total: 6, perAgent: 4 } });
  const { port, close } = await serve(fx);
  const open: Array<ReturnType<typeof rawGet>> = [];
  try {
    const submit = async (token: string) =>
      (
        (await (await fx.post({ skill_id: "w", skill_url: dataUrl("console.log(1)"), args: { n: token.slice(-6) } }, token)).json()) as {
          request_id: string;
        }
      ).request_id;
    const aliceId = await submit(alice.token);
    const bobId = await submit(bob.token);
    for (let n = 0; n < 4; n++) open.push(rawGet(port, `/execute/${aliceId}/status?wait=60`, alice.token));
    await eventually(() => (listeners(fx) >= fx.wiredListeners + 4 ? true : undefined), 5000);
    const fifth = await fetch(`http://127.0.0.1:${port}/execute/${aliceId}/status?wait=60`, {
      headers: { authorization: `Bearer ${alice.token}` },
    });
    assert.equal(fifth.status, 429);
    assert.equal(((await fifth.json()) as { code: string }).code, "too_many_waiters");
    const sse = await fetch(`http://127.0.0.1:${port}/execute/${aliceId}/events`, { headers: { authorization: `Bearer ${alice.token}` } });
    assert.equal(sse.status, 429, "event streams count too");
    // Bob still has his own allowance, up to the total.
    for (let n = 0; n < 2; n++) open.push(rawGet(port, `/execute/${bobId}/status?wait=60`, bob.token));
    await eventually(() => (listeners(fx) >= fx.wiredListeners + 6 ? true : undefined), 5000);
    const overTotal = await fetch(`http://127.0.0.1:${port}/execute/${bobId}/status?wait=60`, {
      headers: { authorization: `Bearer ${bob.token}` },
    });
    assert.equal(overTotal.status, 429);
    // A plain status read (no wait) is never refused.
    const plain = await fetch(`http://127.0.0.1:${port}/execute/${aliceId}/status`, {
      headers: { authorization: `Bearer ${alice.token}` },
    });
    assert.equal(plain.status, 200);
    // A decision ends the waits with the final state.
    await fx.approvals.decide(aliceId, { approve: false, channel: "test", decidedBy: "test:1" });
    await eventually(() => (open.slice(0, 4).every((o) => /"status":"denied"/.test(o.answer())) ? true : undefined), 5000);
  } finally {
    for (const { socket } of open) socket.destroy();
    close();
  }
});
