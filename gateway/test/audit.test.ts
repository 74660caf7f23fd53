import { test, after } from "node:test";
import assert from "node:assert/strict";
import { join } from "node:path";
import { auditHash, verifyAuditChain, type AuditEvent } from "@oauth3/shared";
import { runCli } from "../../cli/src/cli.ts";
import { startOperatorServer } from "../src/operator/operator-api.ts";
import { dataUrl, eventually, gatewayFixture } from "../../test/helpers/gateway-fixture.ts";
import { tempDir } from "../../test/helpers/tmp.ts";

const decide = (approve: boolean) => ({ approve, channel: "test", decidedBy: "test:1" });

/** The operator CLI in-process, against this fixture's operator app on a real Unix socket. */
async function operatorCli(fx: ReturnType<typeof gatewayFixture>) {
  const socketPath = join(tempDir(), "op", "operator.sock");
  const server = await startOperatorServer(fx.operator, socketPath);
  after(() => server.close());
  return async (...argv: string[]) => {
    const lines: string[] = [];
    const code = await runCli(argv, { OPERATOR_SOCKET: socketPath }, (s) => lines.push(s));
    return { code, out: lines.join("\n") };
  };
}

async function flow() {
  const fx = gatewayFixture();
  const submit = async (n: number) =>
    (
      (await (
        await fx.post({ skill_id: "audited", skill_url: dataUrl("console.log(1)"), args: { secretish: `arg-value-${n}` } })
      ).json()) as { request_id: string }
    ).request_id;
  const ran = await submit(1);
  await fx.approvals.decide(ran, decide(true));
  await eventually(() => (fx.store.get(ran)?.status === "completed" ? true : undefined));
  const denied = await submit(2);
  await fx.approvals.decide(denied, decide(false));
  const cli = await operatorCli(fx);
  return { fx, ran, denied, cli };
}

test("every step lands in one hash chain; the CLI verifies it offline", async () => {
  const { fx, ran, denied, cli } = await flow();
  const events = fx.store.auditPage(0, 100);
  assert.deepEqual(
    events.map((e) => [e.type, e.requestId === ran ? "ran" : "denied"]),
    [
      ["request_received", "ran"],
      ["decision", "ran"],
      ["run_started", "ran"],
      ["status", "ran"],
      ["request_received", "denied"],
      ["decision", "denied"],
    ],
  );
  assert.equal(events[1]!.data.by, "test:1");
  assert.equal(events[3]!.data.to, "completed");
  assert.match(String(events[3]!.data.outputSha256), /^[0-9a-f]{64}$/);
  assert.ok(!JSON.stringify(events).includes("arg-value"), "args are recorded as a digest only");
  assert.ok(verifyAuditChain(events).ok);
  const r = await cli("audit");
  assert.equal(r.code, 0, r.out);
  assert.match(r.out, /chain OK: 6 entries, head [0-9a-f]{64}/);
  assert.match(r.out, new RegExp(`decision\\s+${denied}  from=pending to=denied by=test:1`));
});

test("a write that cannot be recorded does not happen (fail-closed)", async () => {
  const fx = gatewayFixture();
  const id = ((await (await fx.post({ skill_id: "x", skill_url: dataUrl("console.log(1)") })).json()) as { request_id: string }).request_id;
  fx.faults.auditWrite = () => {
    throw new Error("MDB_MAP_FULL (simulated)");
  };
  await assert.rejects(fx.approvals.decide(id, decide(true)), /MDB_MAP_FULL/);
  assert.equal(fx.store.get(id)!.status, "pending", "not approved");
  const refused = await fx.post({ skill_id: "y", skill_url: dataUrl("console.log(2)") });
  assert.equal(refused.status, 500);
  assert.equal(fx.store.list(() => true).length, 1, "the new request was not stored");
  await fx.dispatcher.idle(); // a recorded approval would have started a run by now
  assert.equal(fx.executor.jobs.length, 0, "nothing ran");
  fx.faults.auditWrite = undefined;
  assert.equal((await fx.approvals.decide(id, decide(true))).outcome, "approved");
});

test("tampering is caught: an edit, a deletion, a reordering, a forged entry", async () => {
  for (const tamper of ["edit", "delete", "reorder", "forge"] as const) {
    const { fx, cli } = await flow();
    const db = fx.rawAuditDb();
    const e2 = db.get(2)!;
    const e3 = db.get(3)!;
    if (tamper === "edit") await db.put(2, { ...e2, data: { ...e2.data, by: "telegram:999" } });
    if (tamper === "delete") await db.remove(3);
    if (tamper === "reorder") {
      await db.put(2, { ...e3, seq: 2 });
      await db.put(3, { ...e2, seq: 3 });
    }
    if (tamper === "forge") {
      // A well-formed entry with a correct hash of its own, slipped in: the next link breaks.
      const base: Omit<AuditEvent, "hash"> = {
        seq: 3,
        at: e3.at,
        type: "decision",
        requestId: e3.requestId,
        data: { by: "attacker" },
        prev: e2.hash,
      };
      await db.put(3, { ...base, hash: auditHash(base) });
    }
    await fx.store.flushed;
    const r = await cli("audit");
    assert.equal(r.code, 5, `${tamper}: ${r.out}`);
    assert.match(r.out, /CHAIN BROKEN/, tamper);
  }
});

/** Rewrites the whole chain from `from` on with correct hashes: what a compromised gateway could do. */
async function rewrite(db: ReturnType<ReturnType<typeof gatewayFixture>["rawAuditDb"]>, events: AuditEvent[]): Promise<void> {
  let prev = events[0]!.prev;
  for (const e of events) {
    const base = { ...e, prev };
    delete (base as Partial<AuditEvent>).hash;
    const hash = auditHash(base);
    await db.put(e.seq, { ...base, hash });
    prev = hash;
  }
}

test("runner receipts: a consistently rewritten chain still cannot invent or alter a run", async () => {
  const { fx, ran, cli } = await flow();
  const ok = await cli("audit");
  assert.match(ok.out, /chain OK: 6 entries, head [0-9a-f]{64}; 1 run receipts valid, runner key [0-9a-f]{64}/);
  const health = (await (await fx.app.request("/health")).json()) as { runner_signing_key: string };
  assert.match(health.runner_signing_key, /^[0-9a-f]{64}$/);
  assert.equal((await cli("audit", "--runner-key", health.runner_signing_key)).code, 0);
  assert.equal((await cli("audit", "--runner-key", "ab".repeat(32))).code, 5, "another runner's key");

  // 1. Alter the recorded exit code and the receipt's payload, then re-hash the whole chain.
  const events = fx.store.auditPage(0, 100);
  const finished = events.find((e) => e.requestId === ran && e.data.exitCode !== undefined)!;
  const receipt = finished.data.receipt as { payloadJson: string; signature: string; publicKey: string };
  const altered = events.map((e) =>
    e.seq === finished.seq
      ? {
          ...e,
          data: {
            ...e.data,
            exitCode: 7,
            receipt: { ...receipt, payloadJson: receipt.payloadJson.replace('"exitCode":0', '"exitCode":7') },
          },
        }
      : e,
  );
  await rewrite(fx.rawAuditDb(), altered);
  await fx.store.flushed;
  const r1 = await cli("audit");
  assert.equal(r1.code, 5);
  assert.match(r1.out, /receipt signature invalid/);

  // 2. Invent a run the runner never did: a finished entry without a receipt, chain re-hashed.
  const head = fx.store.auditPage(0, 100).at(-1)!;
  const invented: AuditEvent = {
    ...head,
    seq: head.seq + 1,
    type: "status",
    requestId: "exec_00000000000000ff",
    data: { from: "executing", to: "completed", exitCode: 0, outputSha256: "0".repeat(64) },
    prev: head.hash,
    hash: "",
  };
  await rewrite(fx.rawAuditDb(), [
    ...fx.store.auditPage(0, 100).map((e) => (e.seq === finished.seq ? { ...e, data: finished.data } : e)),
    invented,
  ]);
  await fx.store.flushed;
  const r2 = await cli("audit");
  assert.equal(r2.code, 5);
  assert.match(r2.out, /a run outcome without a runner receipt/);

  // 3. Rewrite who approved the run that happened (chain re-hashed, receipt untouched).
  const original = fx.store
    .auditPage(0, 100)
    .filter((e) => e.seq <= events.length)
    .map((e) => (e.seq === finished.seq ? { ...e, data: finished.data } : e));
  const payload = JSON.parse(receipt.payloadJson) as { v: number; uid: unknown; approval: { decidedBy: string; channel: string } };
  assert.equal(payload.v, 4); // v4: bindings, their digest, violations (issue 16)
  assert.deepEqual(
    [payload.approval.decidedBy, payload.approval.channel],
    ["test:1", "test"],
    "the receipt carries the approval the runner was given",
  );
  assert.ok("uid" in payload, "and the uid the skill ran as (null: the runner's own)");
  const decisionEntry = original.find((e) => e.requestId === ran && e.type === "decision")!;
  await fx.rawAuditDb().remove(invented.seq);
  await rewrite(
    fx.rawAuditDb(),
    original.map((e) => (e.seq === decisionEntry.seq ? { ...e, data: { ...e.data, by: "telegram:999" } } : e)),
  );
  await fx.store.flushed;
  const r3 = await cli("audit");
  assert.equal(r3.code, 5);
  assert.match(r3.out, /the approval the runner was given \(test:1 via test\) differs from the recorded decision/);
  assert.doesNotMatch(r3.out, /content does not match|does not link/, "the rewrite itself was consistent");
});

test("the auditor's CLI shows what a (compromised) gateway answers through the sanitiser: no raw control reaches the terminal", async () => {
  const { createServer } = await import("node:http");
  const evil = "x\u001b[2K\r\u202eOK\u2028chain OK\u{e0041}";
  const events = [
    {
      seq: 1,
      at: 0,
      type: `request_received${evil}`,
      requestId: "exec_0123456789abcdef",
      prev: "0".repeat(64),
      hash: "1".repeat(64),
      data: { skillId: evil, codeSha256: "a".repeat(64), secretNames: [evil] },
    },
  ];
  const server = createServer((req, res) => {
    res.setHeader("content-type", "application/json");
    res.end(
      JSON.stringify(
        req.url!.startsWith("/operator/audit")
          ? { events, next: null, head: { seq: 1, hash: "1".repeat(64) } }
          : { error: evil, code: evil },
      ),
    );
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const url = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
  try {
    for (const argv of [
      ["audit", "--url", url],
      ["audit", "--url", url, "--json"],
      ["verify", "--url", url],
      ["self-audit", "--url", url],
    ]) {
      const lines: string[] = [];
      await runCli(argv, { OAUTH3_AUDIT_TOKEN: "t" }, (s) => lines.push(s));
      const output = lines.join("\n");
      assert.ok(output.length > 0, argv.join(" "));
      assert.doesNotMatch(output, /[\u0000-\u0009\u000b-\u001f\u007f-\u009f\u202e\u2028]|\u{e0041}/u, `${argv.join(" ")}: ${output}`);
      if (argv[0] === "audit") assert.ok(output.includes("\\u202e"), "shown visibly, not dropped");
    }
  } finally {
    server.close();
  }
});

test("receipts are compared with the request and the decision: a consistent rewrite of secrets, hosts, uid, termination or a grant is caught", async () => {
  const fx = gatewayFixture();
  const cli = await operatorCli(fx);
  const res = await fx.post({
    skill_id: "held",
    skill_url: dataUrl("// @secrets FOO\n// @network api.example.com\nconsole.log(1)"),
    secrets: ["FOO"],
  });
  const id = ((await res.json()) as { request_id: string }).request_id;
  await fx.approvals.decide(id, decide(true));
  await eventually(() => (fx.store.get(id)?.status === "completed" ? true : undefined));
  const honest = fx.store.auditPage(0, 100);
  const ok = await cli("audit");
  assert.equal(ok.code, 0, ok.out);
  // The receipt's own values are printed beside the entry they vouch for.
  assert.match(
    ok.out,
    /runner receipt: secrets=FOO hosts=api\.example\.com:443 uid=runner's own termination=exited exit=0 approved-by=test:1 via=test/,
  );

  const attacks: Array<[string, (e: AuditEvent) => AuditEvent, RegExp]> = [
    // What the issue reproduced: the approver was shown no secret and no host; the runner was sent both.
    [
      "secrets: none",
      (e) => (e.type === "request_received" ? { ...e, data: { ...e.data, secretNames: [], network: [] } } : e),
      /receipt does not match the recorded run: secrets \(receipt FOO, request none\); hosts \(receipt api\.example\.com:443, request none\)/,
    ],
    [
      "another timeout",
      (e) => (e.type === "request_received" ? { ...e, data: { ...e.data, timeoutSeconds: 1 } } : e),
      /timeout \(receipt \d+ s, request 1 s\)/,
    ],
    [
      "per-run uid claimed",
      (e) => (e.data.exitCode !== undefined ? { ...e, data: { ...e.data, isolation: "per-run-uid" } } : e),
      /uid \(receipt the runner's own, recorded isolation per-run-uid\)/,
    ],
    [
      "timeout recorded as a clean exit's opposite",
      (e) => (e.data.exitCode !== undefined ? { ...e, data: { ...e.data, reason: "timeout" } } : e),
      /termination \(receipt exited, recorded timeout\)/,
    ],
    [
      "a grant that never was",
      (e) => (e.type === "decision" ? { ...e, data: { ...e.data, by: "grant:0123456789ab", channel: "grant" } } : e),
      /approved by grant:0123456789ab, but no grant_created entry precedes it/,
    ],
  ];
  for (const [name, change, problem] of attacks) {
    await rewrite(fx.rawAuditDb(), honest.map(change));
    await fx.store.flushed;
    const r = await cli("audit");
    assert.equal(r.code, 5, `${name}: ${r.out}`);
    assert.match(r.out, problem, name);
    assert.doesNotMatch(r.out, /content does not match|does not link/, `${name}: the rewrite itself was consistent`);
  }
  await rewrite(fx.rawAuditDb(), honest);
  await fx.store.flushed;
  assert.equal((await cli("audit")).code, 0, "the honest chain verifies again");
});

test("a run's outcome that cannot be recorded at first (full disk) is retried, not lost", async () => {
  const fx = gatewayFixture();
  const id = ((await (await fx.post({ skill_id: "x", skill_url: dataUrl("console.log(1)") })).json()) as { request_id: string }).request_id;
  let refusals = 0;
  fx.faults.auditWrite = (e) => {
    if (e.type === "status" && e.data.to === "completed" && refusals++ === 0) throw new Error("MDB_MAP_FULL (simulated)");
  };
  await fx.approvals.decide(id, decide(true));
  const done = await eventually(() => (fx.store.get(id)?.status === "completed" ? fx.store.get(id) : undefined), 5000);
  assert.equal(refusals, 2, "refused once, recorded on the retry");
  assert.equal(done!.result?.exitCode, 0);
  assert.ok(done!.result?.receipt, "with the runner's receipt");
  fx.faults.auditWrite = undefined;
  assert.ok(verifyAuditChain(fx.store.auditPage(0, 100)).ok);
});

test("auditor options are strict: a missing value or an unknown option is an error, never a default", async () => {
  const fx = gatewayFixture();
  const cli = await operatorCli(fx);
  for (const argv of [
    ["verify", "--nonce"],
    ["verify", "--known-head"],
    ["audit", "--runner-key"],
    ["audit", "--nonce", "x"],
    ["self-audit", "--bogus"],
    ["audit", "extra"],
  ]) {
    const r = await cli(...argv);
    assert.equal(r.code, 2, `${argv.join(" ")}: ${r.out}`);
    assert.match(r.out, new RegExp(`^oauth3 ${argv[0]}: `), argv.join(" "));
  }
  assert.equal((await cli("audit", "--json")).code, 0);
});

test("operator commands and the CLI's environment are strict: an unknown option, an extra argument or a bad variable is a usage error", async () => {
  const fx = gatewayFixture();
  const cli = await operatorCli(fx);
  for (const argv of [
    ["pending", "--jsno"],
    ["show", "exec_0123456789abcdef", "extra"],
    ["list", "--raw=1"],
  ]) {
    const r = await cli(...argv);
    assert.equal(r.code, 2, `${argv.join(" ")}: ${r.out}`);
    assert.match(r.out, /^oauth3: /, argv.join(" "));
  }
  assert.equal((await cli("pending", "--json")).code, 0);
  const lines: string[] = [];
  const code = await runCli(["status", "exec_0123456789abcdef"], { OAUTH3_URL: "ftp://gateway" }, (s) => lines.push(s));
  assert.equal(code, 2);
  assert.match(lines.join("\n"), /^oauth3: invalid oauth3 configuration: .*OAUTH3_URL/s);
});
