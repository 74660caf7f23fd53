import { test } from "node:test";
import assert from "node:assert/strict";
import { hashToken, newAgentToken } from "@oauth3/shared";
import { createAgentRegistry } from "../src/http/agent-auth.ts";
import { runCli } from "../../cli/src/cli.ts";
import { verifyAuditChain, verifyRunReceipts } from "@oauth3/shared";
import { dataUrl, eventually, gatewayFixture } from "../../test/helpers/gateway-fixture.ts";

const alice = newAgentToken("alice");
const bob = newAgentToken("bob");
const registry = () => createAgentRegistry(new Map([alice.entry.split(":") as [string, string], bob.entry.split(":") as [string, string]]));
const body = (n: number) => ({ skill_id: "s", skill_url: dataUrl("console.log(1)"), args: { n: String(n) } });

test("with agent tokens configured, requests without a valid one are refused and nothing is stored", async () => {
  const fx = gatewayFixture({ agents: registry() });
  for (const token of [undefined, "oa3_wrong", `${alice.token}x`]) {
    const res = await fx.post(body(1), token);
    assert.equal(res.status, 401, String(token));
    assert.equal(((await res.json()) as { code: string }).code, "unauthorized");
  }
  assert.deepEqual(
    fx.store.list(() => true),
    [],
  );
  assert.equal((await fx.app.request("/health")).status, 200, "health stays open");
});

test("the agent's name travels with its request; agents see only their own", async () => {
  const fx = gatewayFixture({ agents: registry() });
  const res = await fx.post(body(1), alice.token);
  assert.equal(res.status, 200);
  const { request_id } = (await res.json()) as { request_id: string };
  assert.equal(fx.channel.announced[0]!.agent, "alice", "shown to the approver");
  const get = (token: string) => fx.app.request(`/execute/${request_id}/status`, { headers: { authorization: `Bearer ${token}` } });
  const own = await get(alice.token);
  assert.equal(own.status, 200);
  assert.equal(((await own.json()) as { agent: string }).agent, "alice");
  assert.equal((await get(bob.token)).status, 404);
  assert.equal((await fx.app.request(`/execute/${request_id}/status`)).status, 401);
  // Identical bodies from two agents are two requests, not one merged card.
  const fromBob = (await (await fx.post(body(1), bob.token)).json()) as { request_id: string; merged?: boolean };
  assert.notEqual(fromBob.request_id, request_id);
  assert.equal(fromBob.merged, undefined);
});

test("rate limit and pending cap apply per agent", async () => {
  const limited = gatewayFixture({ agents: registry(), submissionsPerMinute: 2 });
  assert.equal((await limited.post(body(1), alice.token)).status, 200);
  assert.equal((await limited.post(body(2), alice.token)).status, 200);
  assert.equal((await limited.post(body(3), alice.token)).status, 429);
  assert.equal((await limited.post(body(4), bob.token)).status, 200, "bob has his own budget");

  const capped = gatewayFixture({ agents: registry(), maxPending: 1 });
  assert.equal((await capped.post(body(1), alice.token)).status, 200);
  const second = await capped.post(body(2), alice.token);
  assert.equal(second.status, 429);
  assert.equal(((await second.json()) as { code: string }).code, "too_many_pending");
  assert.equal((await capped.post(body(3), bob.token)).status, 200);
});

test("oauth3 token prints a new token once and the hashed entry for AGENT_TOKENS", async () => {
  const lines: string[] = [];
  assert.equal(await runCli(["token", "ci-agent", "--json"], {}, (s) => lines.push(s)), 0);
  const { token, entry } = JSON.parse(lines[0]!) as { token: string; entry: string };
  assert.match(token, /^oa3_[A-Za-z0-9_-]{32}$/);
  assert.equal(entry, `ci-agent:${hashToken(token)}`);
  assert.ok(!entry.includes(token));
  assert.equal(await runCli(["token", "bad name"], {}, () => undefined), 2);
});

test("the approver's card names the agent; --help answers for each command", async () => {
  const { renderCard } = await import("../src/telegram/render.ts");
  const { approvalStatement } = await import("@oauth3/shared");
  const card = renderCard(
    approvalStatement(
      {
        id: "exec_0123456789abcdef",
        skillId: "s",
        agent: "alice<script>",
        source: "data:",
        codeSha256: "a".repeat(64),
        codeSize: 1,
        secretNames: [],
        network: [],
        args: [],
        timeoutSeconds: 30,
        expiresAt: 1,
      },
      "1",
    ),
    "1",
  ).html;
  assert.match(card, /Agent: alice&lt;script&gt;/);
  for (const argv of [["--help"], ["run", "--help"], ["status", "-h"], ["approve", "--help"]]) {
    const lines: string[] = [];
    assert.equal(await runCli(argv, {}, (s) => lines.push(s)), 0, argv.join(" "));
    assert.match(lines.join("\n"), /usage: oauth3/);
  }
});

test("a grant pressed on alice's card auto-approves alice's skill only: not bob's identical code, not another skill id", async () => {
  const fx = gatewayFixture({ agents: registry(), grants: true });
  const code = dataUrl("// @secrets FOO\nconsole.log(Deno.env.get('FOO'))");
  const submit = async (token: string, skillId: string, n: number) => {
    const res = await fx.post({ skill_id: skillId, skill_url: code, secrets: ["FOO"], args: { n: String(n) } }, token);
    assert.equal(res.status, 200);
    const body = (await res.json()) as { request_id: string; status: string };
    answered.set(body.request_id, body.status);
    return body.request_id;
  };
  const answered = new Map<string, string>();
  const first = await submit(alice.token, "weather", 1);
  // What the Telegram "Run + allow" button does: approve it, and the approval service makes the grant.
  const decided = await fx.approvals.decide(first, { approve: true, channel: "telegram", decidedBy: "telegram:7001", grantTtlMs: 60_000 });
  assert.ok(decided.outcome === "approved" && decided.grant, "approved with a grant");
  const grant = decided.grant;
  assert.equal(grant.agent, "alice");
  await eventually(() => (fx.store.get(first)!.status === "completed" ? true : undefined));

  const bobs = await submit(bob.token, "weather", 2);
  const renamed = await submit(alice.token, "weather-v2", 3);
  const alices = await submit(alice.token, "weather", 4);
  await eventually(() => (fx.store.get(alices)!.status === "completed" ? true : undefined));
  assert.equal(fx.store.get(alices)!.decidedBy, `grant:${grant.id}`, "the granted agent and skill id run without asking");
  // Decided in the same transaction as its creation: the agent is told so, and no approver was asked.
  assert.equal(answered.get(alices), "approved");
  assert.ok(!fx.channel.announced.some((r) => r.id === alices), "never shown as pending");
  for (const id of [bobs, renamed]) {
    const r = fx.store.get(id)!;
    assert.equal(r.status, "pending", `${r.agent}/${r.skillId} must ask the approver`);
    assert.equal(r.decidedBy, undefined);
  }
  // Bob's output is never produced: only alice's two requests ran.
  assert.deepEqual(fx.executor.jobs.map((j) => j.requestId).sort(), [first, alices].sort());
  assert.deepEqual(
    fx.channel.announced
      .map((r) => r.id)
      .filter((id) => id === bobs || id === renamed)
      .sort(),
    [bobs, renamed].sort(),
  );

  // Creation and revocation are in the audit chain, with who and what.
  assert.equal(await fx.grants!.revoke(grant.id, "telegram:7001"), true);
  const entries = fx.store.auditPage(0, 1000).filter((e) => e.type.startsWith("grant_"));
  assert.deepEqual(
    entries.map((e) => e.type),
    ["grant_created", "grant_revoked"],
  );
  assert.deepEqual(
    { ...entries[0]!.data, expiresAt: 0 },
    {
      grantId: grant.id,
      agent: "alice",
      skillId: "weather",
      codeSha256: grant.codeSha256,
      secretNames: ["FOO"],
      network: [],
      timeoutSeconds: grant.timeoutSeconds,
      by: "telegram:7001",
      expiresAt: 0,
    },
  );
  assert.deepEqual(entries[1]!.data, { grantId: grant.id, by: "telegram:7001" });
  assert.equal(verifyAuditChain(fx.store.auditPage(0, 1000)).ok, true);
  // The grant-approved run verifies against its grant_created entry (agent, skill, code, ...).
  const receipts = verifyRunReceipts(fx.store.auditPage(0, 1000));
  assert.deepEqual([receipts.ok, receipts.receipts, receipts.problems], [true, 2, []]);
});
