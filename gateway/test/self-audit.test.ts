import { test } from "node:test";
import assert from "node:assert/strict";
import { create } from "@bufbuild/protobuf";
import { GetHealthResponseSchema } from "@oauth3/proto/runner/v1";
import { DENO_BASE_FLAGS } from "@oauth3/shared";
import type { ProcessFacts } from "@oauth3/shared/process-report";
import { selfAudit } from "../src/audit/self-audit.ts";

const gateway: ProcessFacts = {
  pid: 10,
  uid: 1000,
  gid: 1000,
  envNames: ["PATH", "TELEGRAM_BOT_TOKEN"],
  listening: ["tcp:0.0.0.0:3737"],
  pidNamespace: "pid:[1]",
};
const runnerHealth = (over: Record<string, unknown> = {}, proc: Record<string, unknown> = {}) =>
  create(GetHealthResponseSchema, {
    runnerVersion: "0.1.0",
    denoVersion: "2.9.6",
    isolation: "per-run-uid",
    egress: "proxy+firewall",
    signingKeySource: "dstack",
    process: {
      pid: 20,
      uid: 0,
      gid: 0,
      envNames: ["PATH", "SECRETS_FILE"],
      listening: ["unix:/run/oauth3/runner.sock", "tcp:127.0.0.1:4000"],
      pidNamespace: "pid:[2]",
      egressProxy: "127.0.0.1:4000",
      denoFlags: [...DENO_BASE_FLAGS],
      socket: { path: "/run/oauth3/runner.sock", dirMode: 0o750, socketMode: 0o660 },
      ...proc,
    },
    ...over,
  });
const base = {
  gateway,
  runner: runnerHealth(),
  secretNames: ["GITHUB_TOKEN"],
  dstackPaths: ["/nonexistent/dstack.sock"],
  operatorSocket: {
    path: "/x/operator.sock",
    dirUid: 1000,
    dirGid: 1000,
    dirMode: 0o700,
    socketUid: 1000,
    socketGid: 1000,
    socketMode: 0o600,
  },
};
const failed = (input: Parameters<typeof selfAudit>[0]) => {
  const r = selfAudit(input);
  return r.checks.filter((c) => c.status === "fail").map((c) => c.check);
};

test("a compose-like deployment passes every check", () => {
  const r = selfAudit(base);
  assert.equal(r.ok, true, JSON.stringify(r.checks));
  assert.ok(r.checks.every((c) => c.status === "ok"));
});

test("each way of breaking the split is a FAIL naming it", () => {
  assert.deepEqual(failed({ ...base, gateway: { ...gateway, envNames: [...gateway.envNames, "GITHUB_TOKEN"] } }), [
    "gateway environment holds no runner secrets",
  ]);
  assert.deepEqual(failed({ ...base, gateway: { ...gateway, envNames: [...gateway.envNames, "SECRETS_DIR"] } }), [
    "gateway environment holds no runner secrets",
  ]);
  assert.deepEqual(failed({ ...base, dstackPaths: ["/"] }), ["gateway has no dstack socket"]);
  assert.deepEqual(failed({ ...base, operatorSocket: { ...base.operatorSocket, socketMode: 0o666 } }), ["operator socket is private"]);
  assert.deepEqual(failed({ ...base, runner: runnerHealth({}, { envNames: ["TELEGRAM_BOT_TOKEN"] }) }), [
    "runner environment holds no gateway credentials",
  ]);
  assert.deepEqual(failed({ ...base, runner: runnerHealth({}, { pidNamespace: "pid:[1]", uid: 1000 }) }), [
    "gateway cannot reach the runner's process",
  ]);
  assert.deepEqual(failed({ ...base, gateway: { ...gateway, uid: 0 }, runner: runnerHealth({}, { pidNamespace: "pid:[1]", uid: 5 }) }), [
    "gateway cannot reach the runner's process",
  ]);
  assert.deepEqual(
    failed({ ...base, runner: runnerHealth({}, { socket: { path: "/run/oauth3/runner.sock", dirMode: 0o755, socketMode: 0o666 } }) }),
    ["runner socket restricted"],
  );
  assert.deepEqual(failed({ ...base, runner: runnerHealth({}, { listening: ["unix:/run/oauth3/runner.sock", "tcp:0.0.0.0:9229"] }) }), [
    "runner listens only on its socket (and the loopback egress proxy)",
  ]);
  assert.deepEqual(
    failed({ ...base, runner: runnerHealth({}, { denoFlags: DENO_BASE_FLAGS.map((f) => (f === "--deny-read" ? "--allow-read" : f)) }) }),
    ["Deno flags deny everything not granted per run"],
  );
  assert.deepEqual(failed({ ...base, runner: runnerHealth({ isolation: "shared-uid" }) }), ["per-run uids"]);
  assert.deepEqual(failed({ ...base, runner: undefined }), ["runner reachable"]);
});

test("weaker but declared modes are WARN, not FAIL", () => {
  const r = selfAudit({
    ...base,
    runner: runnerHealth(
      { egress: "deno-only", signingKeySource: "local" },
      { egressProxy: "", listening: ["unix:/run/oauth3/runner.sock"] },
    ),
  });
  assert.equal(r.ok, true);
  assert.deepEqual(
    r.checks.filter((c) => c.status === "warn").map((c) => c.check),
    ["egress enforced outside Deno", "receipt key from the TEE"],
  );
  // Same PID namespace is fine when the gateway is an unprivileged, different user.
  assert.equal(selfAudit({ ...base, runner: runnerHealth({}, { pidNamespace: "pid:[1]", uid: 5 }) }).ok, true);
});
