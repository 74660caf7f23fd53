import { test } from "node:test";
import assert from "node:assert/strict";
import { Code, ConnectError, createClient, createRouterTransport } from "@connectrpc/connect";
import { VaultRunnerService } from "@oauth3/proto/runner/v1";
import { bindingsDigest, verifyReceipt } from "@oauth3/shared";
import { RunQueue } from "../src/run-queue.ts";
import { RecordingExecutor, routesFor, runnerDeps, skillRequest } from "../../test/helpers/runner-fixture.ts";
import { eventually } from "../../test/helpers/gateway-fixture.ts";

function setup(executor = new RecordingExecutor(), queue?: RunQueue) {
  const deps = runnerDeps(executor, queue ? { queue } : {});
  const client = createClient(VaultRunnerService, createRouterTransport(routesFor(deps)));
  return { client, executor, deps };
}

async function refusedWith(promise: Promise<unknown>, code: Code, pattern?: RegExp) {
  await assert.rejects(promise, (err: unknown) => {
    const ce = ConnectError.from(err);
    assert.equal(ce.code, code, `${Code[ce.code]}: ${ce.rawMessage}`);
    if (pattern) assert.match(ce.rawMessage, pattern);
    return true;
  });
}

test("a well-formed request runs once; the same id again is refused", async () => {
  const { client, executor, deps } = setup();
  const req = skillRequest("// @secrets FOO\nconsole.log(1)", { secretNames: ["FOO"] });
  const res = await client.runSkill(req);
  assert.equal(res.stdout, "ok\n");
  // The runner's own log holds the signed receipt it returned, with the uid (null: its own).
  const entry = deps.ledger.get(req.requestId)!;
  assert.equal(entry.receipt?.payloadJson, res.receipt?.payloadJson);
  assert.ok(verifyReceipt(entry.receipt!.payloadJson, entry.receipt!.signature, deps.signer.publicKeyHex));
  assert.equal(entry.uid, null);
  assert.ok(!JSON.stringify(entry).includes("foo-secret"), "no secret value in the ledger");
  assert.equal(executor.jobs.length, 1);
  assert.deepEqual([...executor.jobs[0]!.secrets.keys()], ["FOO"]);
  await refusedWith(client.runSkill(req), Code.AlreadyExists);
  assert.equal(executor.jobs.length, 1, "a replay must not run");
});

test("a tampered hash is refused and nothing runs", async () => {
  const { client, executor } = setup();
  const req = skillRequest("console.log('approved')");
  await refusedWith(client.runSkill({ ...req, code: Buffer.from("console.log('swapped')") }), Code.InvalidArgument, /hash mismatch/);
  assert.equal(executor.jobs.length, 0);
  // The refused id was not burned: the genuine request can still run.
  await client.runSkill(req);
  assert.equal(executor.jobs.length, 1);
});

test("the runner re-validates every name, host and limit itself", async () => {
  const { client, executor } = setup();
  const cases: Array<[Record<string, unknown>, Code, RegExp]> = [
    [{ secretNames: ["NOPE"] }, Code.FailedPrecondition, /unknown secret names: NOPE/],
    [{ secretNames: ["HTTP_PROXY"] }, Code.InvalidArgument, /reserved_name/],
    [{ secretNames: ["lower"] }, Code.InvalidArgument, /invalid_secret_name/],
    [{ network: ["127.0.0.1:443"] }, Code.InvalidArgument, /invalid_host/],
    [{ network: ["*"] }, Code.InvalidArgument, /invalid_host/],
    [{ network: ["a.com,b.com"] }, Code.InvalidArgument, /invalid_host/],
    [{ args: [{ name: "foo", value: "x" }], secretNames: ["FOO"] }, Code.InvalidArgument, /arg_shadows_name/],
    [{ args: [{ name: "RES_OPTIONS", value: "ndots:9" }] }, Code.InvalidArgument, /reserved_name/],
    [{ args: [{ name: "LOCALDOMAIN", value: "attacker.example" }] }, Code.InvalidArgument, /reserved_name/],
    [{ args: [{ name: "DENO_DIR", value: "/tmp" }] }, Code.InvalidArgument, /reserved_name/],
    [{ timeoutSeconds: 0 }, Code.InvalidArgument, /invalid_timeout/],
    [{ timeoutSeconds: 61 }, Code.InvalidArgument, /invalid_timeout/],
    [{ requestId: "../../etc" }, Code.InvalidArgument, /request_id/],
    [{ codeSha256: "ABC" }, Code.InvalidArgument, /code_sha256/],
  ];
  for (const [fields, code, pattern] of cases) {
    await refusedWith(client.runSkill(skillRequest("console.log(1)", fields)), code, pattern);
  }
  // The header says FOO; a gateway asking for BAR is refused (shown != injected is impossible).
  await refusedWith(
    client.runSkill(skillRequest("// @secrets FOO\nx", { secretNames: ["BAR"] })),
    Code.FailedPrecondition,
    /header_mismatch/,
  );
  await refusedWith(
    client.runSkill(skillRequest("\xff", { code: Buffer.from([0xff, 0xfe]), codeSha256: "a".repeat(64) })),
    Code.InvalidArgument,
  );
  assert.equal(executor.jobs.length, 0, "no refused request may reach execution");
});

test("a full queue refuses at admission, without burning the id", async () => {
  const queue = new RunQueue(1, 1);
  const { client, executor } = setup(new RecordingExecutor(300), queue);
  const first = client.runSkill(skillRequest("console.log(1)"));
  const second = client.runSkill(skillRequest("console.log(2)"));
  await eventually(() => (queue.activeCount === 1 && queue.queuedCount === 1 ? true : undefined));
  const third = skillRequest("console.log(3)");
  await refusedWith(client.runSkill(third), Code.ResourceExhausted);
  await Promise.all([first, second]);
  await client.runSkill(third);
  assert.equal(executor.jobs.length, 3);
});

test("names only: ListSecretNames and GetHealth carry no value, length or digest", async () => {
  const { client } = setup();
  const names = await client.listSecretNames({});
  assert.deepEqual(names.names, ["BAR", "FOO"]);
  const health = await client.getHealth({});
  const wire = JSON.stringify({ names, health }, (_k, v) => (typeof v === "bigint" ? String(v) : v));
  assert.ok(!wire.includes("foo-secret") && !wire.includes("bar-secret"));
  assert.equal(health.secretCount, 2);
});

test("the run queue is fair per agent: one agent's burst cannot starve another's run", async () => {
  // Before: one FIFO; bob's run waited behind all twelve of alice's.
  const queue = new RunQueue(1, 32);
  const { client, executor } = setup(new RecordingExecutor(40), queue);
  const alice = Array.from({ length: 12 }, (_, n) => skillRequest(`console.log("alice ${n}")`, { agent: "alice" }));
  const runs = alice.map((r) => client.runSkill(r));
  // Every one of alice's runs is admitted (started or queued) before bob and carol come.
  await eventually(() => (executor.jobs.length + queue.queuedCount === 12 ? true : undefined));
  const bob = skillRequest(`console.log("bob")`, { agent: "bob" });
  const carol = skillRequest(`console.log("carol")`, { agent: "" }); // unidentified agents share one line
  runs.push(client.runSkill(bob), client.runSkill(carol));
  await Promise.all(runs);
  const order = executor.jobs.map((j) => j.requestId);
  assert.equal(order.length, 14);
  assert.ok(order.indexOf(bob.requestId) <= 2, `bob started at position ${order.indexOf(bob.requestId)} of ${order.length}`);
  assert.ok(order.indexOf(carol.requestId) <= 3, `carol started at position ${order.indexOf(carol.requestId)}`);
  // Within one agent, first come first served.
  const aliceOrder = order.filter((id) => alice.some((r) => r.requestId === id));
  assert.deepEqual(
    aliceOrder,
    alice.map((r) => r.requestId),
  );
  await refusedWith(client.runSkill(skillRequest("console.log(1)", { agent: "bad agent!" })), Code.InvalidArgument, /agent must be/);
});

test("a binding changed after approval refuses the run; an approval that states none is refused when secrets are granted", async () => {
  const { client, executor } = setup();
  // What the approver saw: FOO bound to a host; what the runner holds now: FOO in env mode (widened).
  const shown = bindingsDigest([{ name: "FOO", mode: "placeholder", hosts: ["api.foo-example.com:443"], places: ["header:x-foo"] }]);
  const changed = skillRequest("// @secrets FOO\nconsole.log(1)", {
    secretNames: ["FOO"],
    approval: { decidedBy: "test:1", channel: "test", decidedAtMs: 0n, bindingsSha256: shown },
  });
  await refusedWith(client.runSkill(changed), Code.FailedPrecondition, /bindings of these secrets changed since they were approved/);
  const unstated = skillRequest("// @secrets FOO\nconsole.log(1)", {
    secretNames: ["FOO"],
    approval: { decidedBy: "test:1", channel: "test", decidedAtMs: 0n },
  });
  await refusedWith(client.runSkill(unstated), Code.FailedPrecondition, /does not state the bindings/);
  assert.equal(executor.jobs.length, 0, "neither ran");
  // No secrets: nothing to compare.
  await client.runSkill(skillRequest("console.log(1)", { approval: { decidedBy: "test:1", channel: "test", decidedAtMs: 0n } }));
  assert.equal(executor.jobs.length, 1);
});
