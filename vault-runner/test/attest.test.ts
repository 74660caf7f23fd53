import { test } from "node:test";
import assert from "node:assert/strict";
import { join } from "node:path";
import { Code, ConnectError, createClient, createRouterTransport } from "@connectrpc/connect";
import { VaultRunnerService } from "@oauth3/proto/runner/v1";
import { GENESIS, policyDigest, reportDataFor, tdxReportData } from "@oauth3/shared";
import { SigningKey } from "@oauth3/shared/signing-key";
import { DstackAgent } from "../src/dstack.ts";
import { startFakeDstack } from "../../test/helpers/fake-dstack.ts";
import { RecordingExecutor, routesFor, runnerDeps } from "../../test/helpers/runner-fixture.ts";
import { tempDir } from "../../test/helpers/tmp.ts";

const good = {
  nonce: "5a".repeat(32),
  auditHeadSeq: 7n,
  auditHeadHash: "c4".repeat(32),
  gatewayPublicKey: "1f".repeat(32),
  gatewayPolicyJson: JSON.stringify({ telegram: { chatId: 42 } }),
};

test("without dstack: a statement the runner built itself, tee false, no quote", async () => {
  const deps = runnerDeps(new RecordingExecutor());
  const client = createClient(VaultRunnerService, createRouterTransport(routesFor(deps)));
  const r = await client.attest(good);
  assert.equal(r.tee, false);
  assert.equal(r.quote, "");
  assert.match(r.noTeeReason, /^no TEE/);
  const st = JSON.parse(r.statementJson);
  assert.equal(st.runnerPublicKey, deps.signer.publicKeyHex);
  assert.equal(st.runnerKeySource, "local");
  assert.deepEqual(st.auditHead, { seq: 7, hash: good.auditHeadHash });
  const policy = JSON.parse(r.policyJson);
  assert.deepEqual(policy.gateway, { telegram: { chatId: 42 } });
  assert.equal(policy.runner.denoVersion, deps.denoVersion, "the runner's half is its own");
  assert.equal(st.policySha256, policyDigest(policy));
  assert.equal(r.reportData, reportDataFor(st));
  // An empty chain is seq 0 with the zero hash.
  assert.equal((await client.attest({ ...good, auditHeadSeq: 0n, auditHeadHash: GENESIS })).tee, false);
});

test("malformed claims from the gateway are refused (INVALID_ARGUMENT), naming the field", async () => {
  const client = createClient(VaultRunnerService, createRouterTransport(routesFor(runnerDeps(new RecordingExecutor()))));
  for (const [bad, field] of [
    [{ nonce: "ab" }, /nonce/],
    [{ nonce: "AB".repeat(16) }, /nonce/],
    [{ nonce: "ab".repeat(33) }, /nonce/],
    [{ auditHeadHash: "zz".repeat(32) }, /audit_head_hash/],
    [{ auditHeadSeq: 0n }, /empty chain/],
    [{ auditHeadHash: GENESIS }, /empty chain/],
    [{ gatewayPublicKey: "1f" }, /gateway_public_key/],
    [{ gatewayPolicyJson: "[1]" }, /must be an object/],
    [{ gatewayPolicyJson: "{" }, /not JSON/],
    [{ gatewayPolicyJson: JSON.stringify({ x: "y".repeat(17 * 1024) }) }, /16 KiB/],
  ] as const) {
    await assert.rejects(
      client.attest({ ...good, ...bad }),
      (e: unknown) => {
        const err = ConnectError.from(e);
        return err.code === Code.InvalidArgument && field.test(err.rawMessage);
      },
      Object.keys(bad).join(","),
    );
  }
});

test("with dstack: the quote is over report_data; a failing agent is UNAVAILABLE, never a made-up quote", async () => {
  const dir = tempDir("oauth3-attest-unit-");
  const fake = await startFakeDstack(join(dir, "dstack.sock"));
  const agent = await DstackAgent.connect(fake.socketPath);
  const signer = SigningKey.fromSeed(await agent.receiptSeed());
  const client = createClient(
    VaultRunnerService,
    createRouterTransport(routesFor(runnerDeps(new RecordingExecutor(), { dstack: agent, signer }))),
  );
  const r = await client.attest(good);
  assert.equal(r.tee, true);
  assert.equal((tdxReportData(r.quote) as { reportData: string }).reportData, r.reportData);
  assert.equal(JSON.parse(r.statementJson).runnerKeySource, "dstack");
  assert.equal(JSON.parse(r.dstackInfoJson).compose_hash.length, 64);
  fake.failing.add("GetQuote");
  await assert.rejects(
    client.attest(good),
    (e: unknown) => ConnectError.from(e).code === Code.Unavailable && /GetQuote failed \(injected\)/.test(ConnectError.from(e).rawMessage),
  );
  await fake.close();
});

test("the SDK's HTTP form (a simulator URL) works the same, and yields the same key for the same app", async () => {
  const dir = tempDir("oauth3-attest-http-");
  const overSocket = await startFakeDstack(join(dir, "dstack.sock"));
  const overHttp = await startFakeDstack("tcp");
  assert.match(overHttp.socketPath, /^http:\/\/127\.0\.0\.1:\d+$/);
  const a = SigningKey.fromSeed(await (await DstackAgent.connect(overSocket.socketPath)).receiptSeed());
  const b = SigningKey.fromSeed(await (await DstackAgent.connect(overHttp.socketPath)).receiptSeed());
  assert.equal(a.publicKeyHex, b.publicKeyHex);
  assert.deepEqual(
    overHttp.calls.map((c) => c.method),
    ["Info", "GetKey"],
  );
  assert.deepEqual(overHttp.calls[1]!.body, {
    path: "oauth3-proxy/vault-runner/receipt-signing",
    purpose: "receipt-signing",
    algorithm: "secp256k1",
  });
  await overSocket.close();
  await overHttp.close();
});

test("GetHealth carries the process report only when the self-audit asks (include_process)", async () => {
  let reads = 0;
  const deps = runnerDeps(new RecordingExecutor(), {
    denoFlags: ["--deny-read"],
    processReport: () => {
      reads++;
      return { pid: 1, uid: 0, gid: 0, envNames: ["PATH"], listening: [], pidNamespace: "pid:[1]", perRunUidsActive: 0, egressProxy: "" };
    },
  });
  const client = createClient(VaultRunnerService, createRouterTransport(routesFor(deps)));
  assert.equal((await client.getHealth({})).process, undefined);
  assert.equal(reads, 0, "the frequent health checks do not read /proc");
  const full = await client.getHealth({ includeProcess: true });
  assert.deepEqual([full.process?.envNames, full.process?.denoFlags, reads], [["PATH"], ["--deny-read"], 1]);
});
