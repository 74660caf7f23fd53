import { test } from "node:test";
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { spawnSync } from "node:child_process";
import { readdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { resolveRunSpec, sha256Hex } from "@oauth3/shared";
import { envBindings, IS_ROOT, realDenoExecutor, TEST_SECRETS } from "../../test/helpers/runner-fixture.ts";
import { processesOf } from "../src/uid-pool.ts";
import { MAX_SECRET_BYTES } from "../src/secrets.ts";
import { assertPoolIdsUnassigned, chooseIsolation } from "../src/isolation.ts";
import { resolveDenoBinary } from "../src/deno-binary.ts";
import { tempDir } from "../../test/helpers/tmp.ts";
import { eventually } from "../../test/helpers/gateway-fixture.ts";

const dir = tempDir("oauth3-exec-");
const executor = realDenoExecutor(dir, 62_000, 64 * 1024, 256);

function run(source: string, spec: { secrets?: string[]; timeout?: number; args?: Array<{ name: string; value: string }> } = {}) {
  const code = Buffer.from(source);
  const runSpec = resolveRunSpec({ secrets: spec.secrets ?? [], args: spec.args ?? [], timeoutSeconds: spec.timeout ?? 10 }, {}, 60);
  const secrets = new Map(runSpec.secretNames.map((n) => [n, TEST_SECRETS[n as keyof typeof TEST_SECRETS]]));
  return executor.run({
    requestId: `exec_${Math.random().toString(16).slice(2, 10).padEnd(16, "0")}`,
    code,
    codeSha256: sha256Hex(code),
    spec: runSpec,
    secrets,
    bindings: envBindings(runSpec.secretNames),
  });
}

test("a skill granted FOO reads exactly FOO; BAR and the whole env stay closed", async () => {
  const r = await run(
    `console.log("FOO=" + Deno.env.get("FOO"));
     for (const probe of [() => Deno.env.get("BAR"), () => Deno.env.toObject(), () => Deno.readTextFileSync("/proc/self/environ")]) {
       try { console.log("LEAK", JSON.stringify(probe())); } catch (e) { console.log("denied", e.name); }
     }`,
    { secrets: ["FOO"] },
  );
  assert.equal(r.termination, "exited");
  assert.equal(r.exitCode, 0, r.stderr);
  assert.match(r.stdout, /^FOO=\[REDACTED:FOO\]$/m, "the skill saw FOO's exact value (and it was redacted)");
  assert.equal((r.stdout.match(/denied NotCapable/g) ?? []).length, 3, r.stdout);
  assert.ok(!r.stdout.includes("LEAK"));
  const all = JSON.stringify(r);
  assert.ok(!all.includes(TEST_SECRETS.FOO) && !all.includes(TEST_SECRETS.BAR));
  assert.deepEqual(r.envNames, ["DENO_DIR", "DENO_NO_UPDATE_CHECK", "FOO", "HOME", "LANG", "NO_COLOR", "PATH", "TZ"]);
  assert.ok(r.denoArgs.includes("--allow-env=FOO"));
  assert.ok(!r.denoArgs.some((a) => a === "--allow-env" || a === "--allow-net" || a === "-A" || a.startsWith("--allow-read")));
});

test("args arrive as env variables; the cwd is empty and reads are denied", async () => {
  const r = await run(
    `console.log(Deno.env.get("prompt"));
     try { Deno.readDirSync("."); console.log("LISTED"); } catch (e) { console.log("cwd", e.name); }
     try { await import("https://esm.sh/leftpad"); console.log("REMOTE"); } catch (e) { console.log("remote", e.name); }`,
    { args: [{ name: "prompt", value: "hello world" }] },
  );
  assert.equal(r.exitCode, 0, r.stderr);
  assert.deepEqual(r.stdout.trim().split("\n"), ["hello world", "cwd NotCapable", "remote TypeError"]);
});

test("a skill that ignores SIGTERM is SIGKILLed with its group at the timeout; output kept", async () => {
  const started = Date.now();
  const r = await run(
    `Deno.addSignalListener("SIGTERM", () => console.log("ignoring SIGTERM"));
     console.log("started");
     new Worker("data:text/javascript,while(true){}", { type: "module" });
     while (true) {}`,
    { timeout: 2 },
  );
  const elapsed = Date.now() - started;
  assert.equal(r.termination, "timeout");
  assert.equal(r.exitCode, -1);
  assert.equal(r.signal, "SIGKILL");
  assert.match(r.stdout, /started/);
  assert.ok(elapsed >= 1900 && elapsed < 8000, `killed after ${elapsed} ms`);
});

test("an output flood is cut at the cap and the process killed", async () => {
  const r = await run(`const line = "x".repeat(1023) + "\\n"; while (true) console.log(line);`, { timeout: 20 });
  assert.equal(r.termination, "output_limit");
  assert.ok(r.stdoutTruncated);
  assert.ok(Buffer.byteLength(r.stdout) <= 64 * 1024);
});

test("each run's directory is removed afterwards", async () => {
  await run("console.log(1)");
  await executor.idle(); // clean-up runs after the answer
  assert.deepEqual(readdirSync(join(dir, "work")), []);
});

test("per-run uid: a skill cannot read the secrets file or the runner's environ, even by static import", {
  skip: !IS_ROOT && "per-run uids need root (CI runs as root)",
}, async () => {
  assert.equal(executor.isolation, "per-run-uid");
  const secretsFile = `${dir}/secrets.env`;
  writeFileSync(secretsFile, `FOO=${TEST_SECRETS.FOO}\n`, { mode: 0o600 });
  // Literal specifiers: Deno loads these as part of the module graph, without any read permission
  // check. Only the file system (the skill's own uid) can stop them.
  const probe = (path: string) =>
    `try { const m = await import(${JSON.stringify(path)}, { with: { type: "text" } }); console.log("LEAK", m.default); }
       catch (e) { console.log("blocked", /Permission denied/.test(String(e))); }`;
  const r = await run([secretsFile, `/proc/${process.pid}/environ`, "/proc/1/environ"].map(probe).join("\n"));
  assert.equal(r.stdout, "blocked true\nblocked true\nblocked true\n", r.stdout + r.stderr);
  assert.ok(!JSON.stringify(r).includes(TEST_SECRETS.FOO));
});

test("per-run uid: concurrent skills run under distinct uids, none the runner's; none left afterwards", {
  skip: !IS_ROOT && "per-run uids need root (CI runs as root)",
}, async () => {
  const runs = [run("await new Promise((r) => setTimeout(r, 1500))"), run("await new Promise((r) => setTimeout(r, 1500))")];
  // Both skills are running (each started as its own pool uid); waited for, not slept on.
  const inUse = () => {
    const uids = new Set<number>();
    for (let uid = 62_000; uid < 62_008; uid++) if (processesOf(uid).length > 0) uids.add(uid);
    return uids;
  };
  const uids = await eventually(() => (inUse().size >= 2 ? inUse() : undefined), 5000).catch(() => inUse());
  await Promise.all(runs);
  assert.equal(uids.size, 2, `uids in use: ${[...uids]}`);
  assert.ok(!uids.has(process.getuid!()));
  for (let uid = 62_000; uid < 62_008; uid++) assert.deepEqual(processesOf(uid), []);
});

test("memory: an ArrayBuffer bomb (outside the V8 heap cap) is killed by the watchdog", async () => {
  const r = await run(
    `const keep = []; console.log("allocating");
     for (let i = 0; i < 64; i++) { const b = new Uint8Array(32 * 1024 * 1024); b.fill(1); keep.push(b); }
     console.log("ESCAPED with", keep.length * 32, "MB");`,
    { timeout: 30 },
  );
  assert.equal(r.termination, "memory", `${r.termination} ${r.stdout} ${r.stderr}`);
  assert.equal(r.stdout, "allocating\n");
});

test("memory: a heap bomb dies at the V8 cap without taking the runner down", async () => {
  const r = await run(`const a = []; while (true) a.push({ x: "y".repeat(100) + Math.random() });`, { timeout: 30 });
  assert.notEqual(r.termination, "exited");
  assert.equal(r.exitCode, -1);
  assert.ok(["memory", "signaled"].includes(r.termination), r.termination);
});

test("a 64 KiB secret (the most the loader takes) printed raw and base64 is redacted, and the run is reported as it ran", async () => {
  // Before literal matching, from 16 KiB the redactor's RegExp did not compile: the run was
  // reported failed after its side effects and the error (holding the value) reached the log.
  const big = randomBytes(48 * 1024)
    .toString("base64")
    .slice(0, MAX_SECRET_BYTES);
  const code = Buffer.from(
    `// @secrets FOO\nconst v = Deno.env.get("FOO"); console.log(v); console.log(btoa(v)); console.error(v.length);`,
  );
  const spec = resolveRunSpec({ secrets: ["FOO"], args: [], timeoutSeconds: 10 }, {}, 60);
  const roomy = realDenoExecutor(tempDir("oauth3-exec-big-"), 62_008, 1024 * 1024, 256);
  const r = await roomy.run({
    requestId: "exec_bigsecret00000001",
    code,
    codeSha256: sha256Hex(code),
    spec,
    secrets: new Map([["FOO", big]]),
    bindings: envBindings(["FOO"]),
  });
  assert.equal(r.termination, "exited");
  assert.equal(r.exitCode, 0, r.stderr.slice(0, 500));
  assert.equal(r.stdout, "[REDACTED:FOO]\n[REDACTED:FOO]\n");
  assert.equal(r.stderr.trim(), String(MAX_SECRET_BYTES));
  assert.ok(r.redacted);
  assert.ok(!JSON.stringify(r).includes(big.slice(100, 140)));
});

test("the uid pool refuses a range holding a real account or group (a skill would act as that user; the reaper would kill its processes)", () => {
  const nobody = spawnSync("getent", ["passwd", "nobody"], { encoding: "utf8" }).stdout.split(":");
  const uid = Number(nobody[2]);
  assert.ok(Number.isInteger(uid) && uid > 0, "this host has a nobody account");
  assert.throws(() => assertPoolIdsUnassigned(uid - 3, 8), new RegExp(`uid ${uid} is user "nobody" on this host`));
  // A group alone clashes too (a skill with that gid has the group's access): a gid no user has.
  const uids = new Set(
    readFileSync("/etc/passwd", "utf8")
      .split("\n")
      .map((l) => l.split(":")[2]),
  );
  const onlyGroup = readFileSync("/etc/group", "utf8")
    .split("\n")
    .map((l) => l.split(":"))
    .find((f) => f.length > 2 && !uids.has(f[2]));
  assert.ok(onlyGroup, "this host has a group whose gid is no user's uid");
  assert.throws(
    () => assertPoolIdsUnassigned(Number(onlyGroup[2]), 1),
    new RegExp(`gid ${onlyGroup[2]} is group "${onlyGroup[0]}" on this host`),
  );
  // The default range, and this file's, hold no account here.
  assertPoolIdsUnassigned(61_000, 12);
  assertPoolIdsUnassigned(62_000, 16);
  if (IS_ROOT) {
    assert.throws(
      () =>
        chooseIsolation({ requested: "uid", denoPath: resolveDenoBinary(), uidBase: uid - 3, poolSize: 8, workDir: join(dir, "clash") }),
      /RUNNER_SKILL_UID_BASE=\d+: uid \d+ is user "nobody"/,
    );
  }
});

test("disk: a Cache API or localStorage bomb (no write permission needed) is killed at the run's disk cap, reason disk", async () => {
  // Before: --deny-write did not stop it; a skill capped at 192 MB of memory wrote 402 MiB.
  const limited = realDenoExecutor(tempDir("oauth3-exec-disk-"), 62_024, 64 * 1024, 512, 16);
  for (const [what, body] of [
    [
      "caches",
      `const c = await caches.open("x"); const mb = "x".repeat(1 << 20);
      for (let n = 1; n <= 200; n++) { await c.put(new Request("http://a/" + n), new Response(mb)); console.log(n); }`,
    ],
    [
      "localStorage",
      `const big = "y".repeat(1 << 20);
      for (let n = 1; n <= 200; n++) { try { localStorage.setItem("k" + n, big); } catch (e) { console.log("quota", n); break; } console.log(n); }
      const c = await caches.open("z"); for (let n = 1; n <= 200; n++) { await c.put(new Request("http://b/" + n), new Response(big)); console.log("c" + n); }`,
    ],
  ] as const) {
    const code = Buffer.from(body);
    const spec = resolveRunSpec({ secrets: [], args: [], timeoutSeconds: 30 }, {}, 60);
    const r = await limited.run({
      requestId: what === "caches" ? "exec_d15c000000000001" : "exec_d15c000000000002",
      code,
      codeSha256: sha256Hex(code),
      spec,
      secrets: new Map(),
      bindings: new Map(),
    });
    assert.equal(r.termination, "disk", `${what}: ${r.termination} ${r.stdout.slice(-200)} ${r.stderr.slice(0, 300)}`);
    const written = r.stdout
      .trim()
      .split("\n")
      .filter((l) => /^c?\d+$/.test(l)).length;
    assert.ok(written < 200, `${what}: stopped before the end (${written} MiB)`);
    assert.ok(written <= 16 + 40, `${what}: at most the cap plus one watchdog period of writes (${written} MiB)`);
    console.error(`# disk cap 16 MiB, ${what}: killed after ${written} MiB written (${r.durationMs} ms)`);
  }
  await limited.idle();
});
