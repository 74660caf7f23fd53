/**
 * Attestation and the split self-audit, through the real launcher, processes and CLI, with a fake
 * dstack guest agent on a Unix socket that @phala/dstack-sdk talks to unchanged. The binding and
 * the chain are verified for real; only the quote's Intel signature is fake (and said to be).
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { createPrivateKey, createPublicKey, hkdfSync } from "node:crypto";
import { existsSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { open } from "lmdb";
import { canonicalJson, tdxReportData, type AuditEvent } from "../shared/src/index.ts";
import { newAgentToken } from "@oauth3/shared";
import { verifyEvidence } from "../cli/src/verify-evidence.ts";
import { fakeKey, startFakeDstack, type FakeDstack } from "./helpers/fake-dstack.ts";
import { freePort, Stack } from "./helpers/stack.ts";
import { tempDir } from "./helpers/tmp.ts";
import { assertHealthMode } from "./helpers/sandbox-mode.ts";

const FOO = "foo-attest-secret-5c2e81d0";
const dir = tempDir("oauth3-attest-");
writeFileSync(join(dir, "secrets.env"), `FOO=${FOO}\n`, { mode: 0o600 });
mkdirSync(join(dir, "dstack"), { mode: 0o700 });

let dstack: FakeDstack;
let stack: Stack;
const auditor = newAgentToken("auditor");
const agentToken = newAgentToken("agent-x");
let auditUrl = "";

async function makeStack(sub: string, extra: Record<string, string>, port?: number): Promise<Stack> {
  mkdirSync(join(dir, sub), { recursive: true });
  return new Stack({
    dir: join(dir, sub),
    port: port ?? (await freePort()),
    env: { SECRETS_FILE: join(dir, "secrets.env"), RUNNER_BINDINGS: "FOO env", RUNNER_SKILL_UID_BASE: "66600", ...extra },
  });
}

before(async () => {
  dstack = await startFakeDstack(join(dir, "dstack", "dstack.sock"));
  const auditPort = await freePort();
  auditUrl = `http://127.0.0.1:${auditPort}`;
  stack = await makeStack("tee", { RUNNER_DSTACK_ENDPOINT: dstack.socketPath, AUDIT_TOKENS: auditor.entry, AUDIT_PORT: String(auditPort) });
  await stack.start();
});

after(async () => {
  await stack?.stop();
});

const data = (code: string) => `data:text/typescript,${encodeURIComponent(code)}`;

async function runOne(s: Stack): Promise<void> {
  const { status, json } = await s.post({
    skill_id: "uses-foo",
    skill_url: data('console.log(Deno.env.get("FOO")!.length)'),
    secrets: ["FOO"],
  });
  assert.equal(status, 200, JSON.stringify(json));
  assert.equal(s.cli("approve", String(json.request_id)).code, 0);
  const final = await s.waitFinal(String(json.request_id));
  assert.equal(final.status, "completed", JSON.stringify(final));
}

async function verifyJson(s: Stack, ...args: string[]): Promise<{ code: number; body: Record<string, unknown>; out: string }> {
  const r = await s.cliAsync("verify", "--json", ...args);
  return { code: r.code, body: JSON.parse(r.out) as Record<string, unknown>, out: r.out };
}

/** The runner's receipt key, derived here independently from the fake agent's key for that path. */
function expectedRunnerKey(): string {
  const seed = Buffer.from(
    hkdfSync(
      "sha256",
      fakeKey("oauth3-proxy/vault-runner/receipt-signing", "receipt-signing"),
      "oauth3-proxy",
      "receipt-signing ed25519 v1",
      32,
    ),
  );
  const priv = createPrivateKey({
    key: Buffer.concat([Buffer.from("302e020100300506032b657004220420", "hex"), seed]),
    format: "der",
    type: "pkcs8",
  });
  return createPublicKey(priv).export({ type: "spki", format: "der" }).subarray(-32).toString("hex");
}

describe("attestation with a dstack guest agent", () => {
  test("verify: the quote binds the nonce, audit head, both keys and the policy; the chain checks out", async () => {
    await runOne(stack);
    const nonce = "a1".repeat(32);
    const { code, body } = await verifyJson(stack, "--nonce", nonce);
    assert.equal(code, 0, JSON.stringify(body.checks));
    assert.equal(body.attested, true);
    const ev = body.evidence as Record<string, unknown>;
    const st = ev.statement as Record<string, unknown>;
    assert.equal(st.nonce, nonce);
    assert.equal(st.runnerKeySource, "dstack");
    assert.equal(st.runnerPublicKey, expectedRunnerKey(), "the receipt key is the one derived from dstack GetKey");
    // The fake agent was asked for a quote over exactly that report_data, and the quote carries it.
    const quoteCalls = dstack.calls.filter((c) => c.method === "GetQuote");
    assert.equal(quoteCalls.at(-1)!.body.report_data, ev.report_data);
    const fields = tdxReportData(String(ev.quote)) as { reportData: string; rtmr3: string; version: number };
    assert.deepEqual([fields.reportData, fields.version], [ev.report_data, 4]);
    const checks = (body.checks as { check: string; ok: boolean }[]).map((c) => c.check);
    for (const c of [
      "RTMR3 replayed from the event log matches the quote",
      "RTMR3 compose-hash event = Info compose_hash",
      "RTMR3 app-id event = Info app_id",
    ]) {
      assert.ok(checks.includes(c), c);
    }
    const policy = ev.policy as { runner: Record<string, unknown>; gateway: Record<string, unknown> };
    assert.ok((policy.runner.denoFlags as string[]).includes("--deny-read"));
    assertHealthMode(policy.runner);
    assert.equal((ev.dstack_info as Record<string, unknown>).app_compose, dstack.appCompose);
    // The attested head is the chain's head, and the run's receipt is signed by the attested key.
    const audit = stack.cli("audit", "--json");
    const events = (JSON.parse(audit.out) as { events: AuditEvent[] }).events;
    assert.deepEqual(st.auditHead, { seq: events.at(-1)!.seq, hash: events.at(-1)!.hash });
    assert.ok(events.some((e) => (e.data.receipt as { publicKey?: string } | undefined)?.publicKey === st.runnerPublicKey));
    // Both public keys are published on the agent API's /health too.
    const health = (await (await fetch(`${stack.baseUrl}/health`)).json()) as Record<string, unknown>;
    assert.equal(health.gateway_signing_key, st.gatewayPublicKey);
    assert.equal(health.runner_signing_key, st.runnerPublicKey);
    assert.equal(health.runner_signing_key_source, "dstack");
    // The key came from dstack, so the runner wrote no key file.
    assert.ok(!existsSync(join(stack.options.dir, "runner-state", "receipt-signing-key.pem")));
    assert.ok(!JSON.stringify(body).includes(FOO));
  });

  test("verify in words: what was proven and what is left to check elsewhere", async () => {
    const r = await stack.cliAsync("verify");
    assert.equal(r.code, 0, r.out);
    assert.match(r.out, /Binding verified/);
    assert.match(r.out, /Still to check elsewhere:\n\s+- the quote's signature and TCB status with a DCAP verifier/);
    assert.match(r.out, /compose_hash/);
    assert.doesNotMatch(r.out, /FAIL/);
  });

  test("each forged piece of evidence is caught offline", async () => {
    const nonce = "b2".repeat(16);
    const { body } = await verifyJson(stack, "--nonce", nonce);
    const ev = body.evidence as Record<string, unknown>;
    const events = (JSON.parse(stack.cli("audit", "--json").out) as { events: AuditEvent[] }).events;
    const checkpoint = body.checkpoint as Parameters<typeof verifyEvidence>[3];
    assert.equal(verifyEvidence(structuredClone(ev), nonce, events, checkpoint).ok, true, "the genuine evidence passes");
    const failing = (
      mutate: (e: Record<string, unknown>) => void,
      n = nonce,
      evs = events,
      cp: { checkpoint: typeof checkpoint } = { checkpoint },
    ) => {
      const e = structuredClone(ev);
      mutate(e);
      return verifyEvidence(e, n, evs, cp.checkpoint)
        .checks.filter((c) => !c.ok)
        .map((c) => c.check);
    };
    const st = (e: Record<string, unknown>) => e.statement as Record<string, unknown>;
    assert.deepEqual(
      failing(() => {}, "c3".repeat(16)),
      ["statement carries our nonce"],
      "a replayed answer",
    );
    assert.ok(
      failing((e) => ((e.policy as { gateway: Record<string, unknown> }).gateway.telegram = { chatId: 666 })).includes(
        "policy digest matches the policy shown",
      ),
    );
    assert.ok(
      failing((e) => (st(e).runnerPublicKey = "00".repeat(32))).includes("report_data = SHA-512(statement)"),
      "a swapped runner key",
    );
    assert.ok(
      failing((e) => (st(e).auditHead = { seq: 1, hash: events[0]!.hash })).includes("report_data = SHA-512(statement)"),
      "an older head",
    );
    assert.ok(failing((e) => (e.report_data = "00".repeat(64))).length > 0);
    // A quote made for another report_data (e.g. replayed from another call).
    const other = (await verifyJson(stack)).body.evidence as Record<string, unknown>;
    assert.deepEqual(
      failing((e) => (e.quote = other.quote)),
      ["the quote's report_data is that value"],
    );
    assert.ok(
      failing((e) => (e.gateway_signature = other.gateway_signature)).includes("gateway countersigned the statement with the key it names"),
    );
    // An event log or Info that does not match the quote's RTMR3 (another app's compose, say).
    const otherCompose = "9".repeat(64);
    assert.deepEqual(
      failing((e) => ((e.dstack_info as Record<string, unknown>).compose_hash = otherCompose)),
      ["RTMR3 compose-hash event = Info compose_hash", "compose_hash = sha256(app_compose)"],
    );
    const relabelled = (e: Record<string, unknown>) => {
      const log = JSON.parse(String(e.event_log)) as { event: string; event_payload: string }[];
      log.find((x) => x.event === "compose-hash")!.event_payload = otherCompose;
      e.event_log = JSON.stringify(log);
    };
    assert.ok(
      failing(relabelled).includes("RTMR3 replayed from the event log matches the quote"),
      "an event whose payload is not its digest",
    );
    const reordered = (e: Record<string, unknown>) => {
      const log = JSON.parse(String(e.event_log)) as unknown[];
      e.event_log = JSON.stringify([log[0], log[2], log[1], ...log.slice(3)]);
    };
    assert.deepEqual(failing(reordered), ["RTMR3 replayed from the event log matches the quote"]);
    // A chain edited after the fact, or truncated before the attested head.
    const edited = structuredClone(events);
    (edited[0]!.data as Record<string, unknown>).skillId = "innocent";
    assert.ok(failing(() => {}, nonce, edited).includes("audit chain links and hashes"));
    assert.ok(failing(() => {}, nonce, events.slice(0, -1)).includes("attested audit head is in the chain"));
    // No checkpoint, or one for another head, or signed by another key.
    const cpCheck = "checkpoint signed by the attested gateway key, naming the chain's head";
    assert.deepEqual(
      failing(() => {}, nonce, events, { checkpoint: undefined }),
      [cpCheck],
    );
    assert.deepEqual(
      failing(() => {}, nonce, events, {
        checkpoint: { ...checkpoint!, payload_json: checkpoint!.payload_json.replace(/"seq":\d+/, '"seq":1') },
      }),
      [cpCheck],
    );
    assert.deepEqual(
      failing(() => {}, nonce, events, { checkpoint: { ...checkpoint!, public_key: "ab".repeat(32) } }),
      [cpCheck],
    );
  });

  test("a chain edited on disk fails verify; a truncated one fails --known-head", async () => {
    const before = await verifyJson(stack);
    assert.equal(before.code, 0);
    const head = String(before.body.head);
    await stack.stop();
    const db = open({ path: join(stack.options.dir, "gateway-db") });
    const audit = db.openDB<AuditEvent, number>({ name: "audit", keyEncoding: "uint32" });
    const last = [...audit.getRange({ reverse: true, limit: 1 })][0]!.value;
    await audit.remove(last.seq);
    await db.close();
    await stack.start();
    // The shorter chain is self-consistent and the new attestation names the new head ...
    assert.equal((await verifyJson(stack)).code, 0);
    // ... but it no longer contains the head the operator saw before.
    const truncated = await stack.cliAsync("verify", "--known-head", head);
    assert.equal(truncated.code, 5, truncated.out);
    assert.match(truncated.out, /FAIL {2}the chain still contains the head you saw before: entry \d+ is gone \(truncated\)/);

    await stack.stop();
    const db2 = open({ path: join(stack.options.dir, "gateway-db") });
    const audit2 = db2.openDB<AuditEvent, number>({ name: "audit", keyEncoding: "uint32" });
    const first = audit2.get(1)!;
    await audit2.put(1, { ...first, data: { ...first.data, skillId: "innocent" } });
    await db2.close();
    await stack.start();
    const edited = await stack.cliAsync("verify");
    assert.equal(edited.code, 5, edited.out);
    assert.match(edited.out, /FAIL {2}audit chain links and hashes: entry 1: content does not match its hash \(edited\)/);
    assert.match(edited.out, /VERIFICATION FAILED/);
    // Put the entry back (later tests use this stack): the chain verifies again.
    await stack.stop();
    const db3 = open({ path: join(stack.options.dir, "gateway-db") });
    await db3.openDB<AuditEvent, number>({ name: "audit", keyEncoding: "uint32" }).put(1, first);
    await db3.close();
    await stack.start();
    assert.equal((await verifyJson(stack)).code, 0);
  });

  test("the same app gets the same runner key after a restart; a dead guest agent stops the runner", async () => {
    const key1 = ((await verifyJson(stack)).body.evidence as { statement: { runnerPublicKey: string } }).statement.runnerPublicKey;
    await stack.stop();
    await stack.start();
    const key2 = ((await verifyJson(stack)).body.evidence as { statement: { runnerPublicKey: string } }).statement.runnerPublicKey;
    assert.equal(key2, key1);
    // GetQuote failing: a clear 502, never a made-up quote.
    dstack.failing.add("GetQuote");
    try {
      const r = await stack.cliAsync("verify");
      assert.equal(r.code, 3, r.out);
      assert.match(
        r.out,
        /attestation refused: dstack guest agent GetQuote .* failed: GetQuote failed \(injected\) \(attestation_failed\)/,
      );
    } finally {
      dstack.failing.delete("GetQuote");
    }
    await stack.stop();
    const broken = await makeStack("tee", { RUNNER_DSTACK_ENDPOINT: join(dir, "dstack", "missing.sock") }, stack.options.port);
    await assert.rejects(broken.start(), /dstack guest agent at .*missing\.sock: Unix socket file .* does not exist/);
    await broken.stop();
    await stack.start();
  });

  test("self-audit: ids, env names, sockets, Deno flags; the same-uid launcher is flagged", async () => {
    const r = await stack.cliAsync("self-audit", "--json");
    const audit = JSON.parse(r.out) as {
      ok: boolean;
      checks: { check: string; status: string; detail: string }[];
      gateway: Record<string, unknown>;
      runner: Record<string, unknown>;
    };
    const status = Object.fromEntries(audit.checks.map((c) => [c.check, c.status]));
    // npm start runs both processes as one user in one PID namespace: the gateway could read the
    // runner's memory. The self-audit says so (compose.yaml separates them).
    assert.equal(status["gateway cannot reach the runner's process"], "fail");
    assert.equal(r.code, 6);
    assert.equal(audit.ok, false);
    for (const ok of [
      "gateway environment holds no runner secrets",
      "runner environment holds no gateway credentials",
      "runner socket restricted",
      "runner listens only on its socket (and the loopback egress proxy)",
      "Deno flags deny everything not granted per run",
      "receipt key from the TEE",
      "operator socket is private",
      "gateway has no dstack socket",
    ])
      assert.equal(status[ok], "ok", `${ok}: ${JSON.stringify(audit.checks.find((c) => c.check === ok))}`);
    assert.ok((audit.runner.envNames as string[]).includes("RUNNER_DSTACK_ENDPOINT"));
    assert.ok(!(audit.gateway.envNames as string[]).includes("RUNNER_DSTACK_ENDPOINT"));
    assert.ok((audit.runner.listening as string[]).includes(`unix:${stack.runnerSocket}`));
    assert.equal((audit.runner.socket as { socketMode: number }).socketMode, 0o660);
    const text = await stack.cliAsync("self-audit");
    assert.match(text.out, /FAIL {2}gateway cannot reach the runner's process: same PID namespace/);
    assert.match(text.out, /SPLIT VIOLATED/);
    assert.ok(!r.out.includes(FOO) && !text.out.includes(FOO));
  });
});

describe("remote audit (AUDIT_TOKENS, for auditors who cannot reach the machine)", () => {
  test("verify, audit and self-audit over AUDIT_PORT with an audit token; nothing else, nothing without it", async () => {
    const remote = (env: Record<string, string>, ...args: string[]) => stack.cliWith(env, ...args, "--url", auditUrl);
    const ok = await remote({ OAUTH3_AUDIT_TOKEN: auditor.token, OPERATOR_SOCKET: "/nonexistent.sock" }, "verify", "--json");
    assert.equal(ok.code, 0, ok.out);
    const v = JSON.parse(ok.out) as { attested: boolean; checks: { ok: boolean }[] };
    assert.equal(v.attested, true);
    assert.ok(v.checks.length >= 12 && v.checks.every((c) => c.ok));
    assert.equal((await remote({ OAUTH3_AUDIT_TOKEN: auditor.token }, "audit")).code, 0);
    const sa = await remote({ OAUTH3_AUDIT_TOKEN: auditor.token }, "self-audit");
    assert.match(sa.out, /OK +runner socket restricted/);
    // No token, a wrong token, an agent's kind of token: refused, and said so.
    assert.match((await remote({}, "verify")).out, /--url needs OAUTH3_AUDIT_TOKEN/);
    const wrong = await remote({ OAUTH3_AUDIT_TOKEN: agentToken.token }, "verify");
    assert.equal(wrong.code, 3);
    assert.match(wrong.out, /attestation refused: unknown audit token \(unauthorized\)/);
    assert.equal((await fetch(`${auditUrl}/operator/audit`)).status, 401);
    // Read-only: no listing of requests (with their code), no decisions, no metrics remotely; and
    // the agent port serves none of it.
    const auth = { authorization: `Bearer ${auditor.token}` };
    for (const [method, path] of [
      ["GET", "/operator/requests"],
      ["POST", "/operator/requests/exec_0000000000000001/approve"],
      ["GET", "/operator/metrics"],
      ["GET", "/execute/exec_0000000000000001/status"],
    ] as const) {
      assert.equal((await fetch(`${auditUrl}${path}`, { method, headers: auth })).status, 404, path);
    }
    assert.equal((await fetch(`${stack.baseUrl}/operator/audit`, { headers: auth })).status, 404, "not on the agent port");
    const bad = await fetch(`${auditUrl}/operator/attestation?nonce=zz`, { headers: auth });
    assert.equal(bad.status, 400);
    assert.equal(((await bad.json()) as { code: string }).code, "invalid_nonce");
  });
});

describe("attestation without a TEE", () => {
  test("verify says plainly that nothing is attested, and still checks the chain", async () => {
    const plain = await makeStack("plain", {});
    await plain.start();
    try {
      await runOne(plain);
      const { code, body } = await verifyJson(plain);
      assert.equal(code, 7, JSON.stringify(body.checks));
      assert.equal(body.ok, true);
      assert.equal(body.attested, false);
      const ev = body.evidence as Record<string, unknown>;
      assert.equal(ev.tee, false);
      assert.equal(ev.quote, undefined, "never a made-up quote");
      assert.match(String(ev.no_tee_reason), /no TEE: this runner has no dstack guest agent/);
      assert.equal((ev.statement as Record<string, unknown>).runnerKeySource, "local");
      const words = await plain.cliAsync("verify");
      assert.match(words.out, /NOT ATTESTED: no TEE/);
      assert.equal((await plain.cliAsync("verify", "--nonce", "xyz")).code, 2, "a malformed nonce is refused");
      assert.equal((await fetch(`${plain.baseUrl}/operator/audit`)).status, 404, "no remote audit on the agent port");
      // The local key lives 0600 on the runner's own volume.
      const keyFile = join(plain.options.dir, "runner-state", "receipt-signing-key.pem");
      assert.equal(statSync(keyFile).mode & 0o777, 0o600);
      assert.equal(statSync(join(plain.options.dir, "gateway-db", "gateway-signing-key.pem")).mode & 0o777, 0o600);
      for (const f of readdirSync(join(plain.options.dir, "gateway-db"))) {
        assert.ok(!readFileSync(join(plain.options.dir, "gateway-db", f)).includes(FOO), f);
      }
      assert.ok(!JSON.stringify(body).includes(FOO));
      assert.equal(canonicalJson(ev.statement), canonicalJson(JSON.parse(canonicalJson(ev.statement))));
    } finally {
      await plain.stop();
    }
  });
});
