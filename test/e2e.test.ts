/**
 * The product as a user runs it: real launcher, real gateway and vault-runner processes, real LMDB,
 * real gRPC on the real Unix socket, real Deno, the real operator CLI. Every test that attacks also
 * checks at the end that no secret or token reached any result, log or database file.
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import { readdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { Code, ConnectError } from "@connectrpc/connect";
import { createRunnerClient } from "../gateway/src/runs/runner-client.ts";
import { serveLocal } from "./helpers/local-server.ts";
import { freePort, ROOT, Stack } from "./helpers/stack.ts";
import { tempDir } from "./helpers/tmp.ts";
import { assertHealthMode, PROXIED } from "./helpers/sandbox-mode.ts";

const TOKEN = "7777777:AAE2e-TelegramTokenMustNeverLeak";
const FOO = "foo-e2e-secret-4b1d9c0f";
const BAR = "bar-e2e-secret-91aa07e3";
const SENSITIVE = [TOKEN, FOO, BAR, "TelegramTokenMustNeverLeak"];

const dir = tempDir("oauth3-e2e-");
writeFileSync(join(dir, "secrets.env"), `FOO=${FOO}\nBAR=${BAR}\n`, { mode: 0o600 });

let skillPort = 0;
let fetchCount = 0;
let stack: Stack;

before(async () => {
  ({ port: skillPort } = await serveLocal((_req, res) => {
    fetchCount++;
    res.end(fetchCount === 1 ? "console.log('approved bytes')" : "console.log('swapped bytes')");
  }));
  stack = new Stack({
    dir,
    port: await freePort(),
    env: {
      TELEGRAM_BOT_TOKEN: TOKEN,
      SECRETS_FILE: join(dir, "secrets.env"),
      RUNNER_BINDINGS: "FOO env;BAR env",
      SKILL_FETCH_ALLOW_PRIVATE: `127.0.0.1:${skillPort}`,
      RUNNER_SKILL_UID_BASE: "63000",
    },
  });
  await stack.start();
});

after(async () => {
  await stack?.stop();
});

async function submitAndApprove(body: Record<string, unknown>): Promise<Record<string, unknown>> {
  const { status, json } = await stack.post(body);
  assert.equal(status, 200, JSON.stringify(json));
  const id = String(json.request_id);
  const approved = stack.cli("approve", id);
  assert.equal(approved.code, 0, approved.out);
  return stack.waitFinal(id);
}

const data = (code: string) => `data:text/typescript,${encodeURIComponent(code)}`;

describe("end to end", () => {
  test("the seed's isolation check never reveals the token", async () => {
    const { json } = await stack.post({
      skill_id: "test-isolation",
      skill_url: 'data:text/typescript,console.log(Deno.env.get("TELEGRAM_BOT_TOKEN") || "NOT ACCESSIBLE")',
      secrets: [],
    });
    const id = String(json.request_id);
    assert.equal((await stack.status(id)).status, "pending", "nothing runs before approval");
    assert.match(stack.cli("pending").out, new RegExp(id));
    assert.equal(stack.cli("approve", id).code, 0);
    const final = await stack.waitFinal(id);
    const result = final.result as Record<string, unknown>;
    // Deno refuses the read (no --allow-env) and the env holds no token anyway.
    assert.equal(final.status, "failed");
    assert.match(String(result.stderr), /NotCapable: Requires env access to "TELEGRAM_BOT_TOKEN"/);
    assert.ok(!JSON.stringify(final).includes(TOKEN));
  });

  test("a skill granted FOO reads FOO and cannot read BAR; output is redacted", async () => {
    const final = await submitAndApprove({
      skill_id: "foo-reader",
      skill_url: data(`// @secrets FOO
console.log("FOO", Deno.env.get("FOO"), btoa(Deno.env.get("FOO")));
try { console.log("BAR", Deno.env.get("BAR")); } catch (e) { console.log("BAR denied", e.name); }
try { console.log(JSON.stringify(Deno.env.toObject())); } catch (e) { console.log("env denied", e.name); }`),
      secrets: ["FOO"],
    });
    assert.equal(final.status, "completed", JSON.stringify(final));
    const result = final.result as { stdout: string; success: boolean; redacted: boolean };
    assert.equal(result.stdout, "FOO [REDACTED:FOO] [REDACTED:FOO]\nBAR denied NotCapable\nenv denied NotCapable\n");
    assert.ok(result.redacted);
    const policy = (final.result as { policy: Record<string, unknown> }).policy;
    assertHealthMode(policy);
    assert.deepEqual(policy.env_names, [
      "DENO_DIR",
      "DENO_NO_UPDATE_CHECK",
      "FOO",
      "HOME",
      ...(PROXIED ? ["HTTPS_PROXY", "HTTP_PROXY"] : []),
      "LANG",
      "NO_COLOR",
      "PATH",
      "TZ",
    ]);
    assert.ok((policy.deno_args as string[]).includes("--allow-env=FOO"));
  });

  test("a skill that serves different bytes on a second fetch still runs the approved bytes", async () => {
    const final = await submitAndApprove({ skill_id: "remote", skill_url: `http://127.0.0.1:${skillPort}/skill.ts` });
    assert.equal(fetchCount, 1, "fetched once, at submission");
    assert.equal((final.result as { stdout: string }).stdout, "approved bytes\n");
    const served = await (await fetch(`http://127.0.0.1:${skillPort}/skill.ts`)).text();
    assert.equal(served, "console.log('swapped bytes')");
    assert.equal(final.code_hash, createHash("sha256").update("console.log('approved bytes')").digest("hex"));
  });

  test("a compromised gateway cannot run tampered bytes or replay a run", async () => {
    // Talk to the runner directly over its socket, as a gateway under an attacker's control would.
    const runner = createRunnerClient(stack.runnerSocket);
    const { json } = await stack.post({ skill_id: "x", skill_url: data("console.log('once')") });
    const id = String(json.request_id);
    stack.cli("approve", id);
    const final = await stack.waitFinal(id);
    assert.equal(final.status, "completed");
    const code = Buffer.from("console.log('once')");
    const replay = runner.runSkill({ requestId: id, code, codeSha256: String(final.code_hash), timeoutSeconds: 5 });
    await assert.rejects(replay, (e: unknown) => ConnectError.from(e).code === Code.AlreadyExists);
    const tampered = runner.runSkill({
      requestId: "exec_00000000000000aa",
      code: Buffer.from(`console.log(Deno.env.get("FOO"))`),
      codeSha256: String(final.code_hash),
      secretNames: ["FOO"],
      timeoutSeconds: 5,
    });
    await assert.rejects(tampered, (e: unknown) => ConnectError.from(e).code === Code.InvalidArgument);
    // The runner logs the refusal (pino writes asynchronously: allow it a moment).
    for (let i = 0; i < 50 && !/"reason":"code hash mismatch[^"]*","msg":"run refused"/.test(stack.log()); i++) {
      await new Promise((r) => setTimeout(r, 50));
    }
    assert.match(stack.log(), /"reason":"code hash mismatch[^"]*","msg":"run refused"/);
  });

  test("a skill that ignores SIGTERM is killed at its timeout", async () => {
    const started = Date.now();
    const final = await submitAndApprove({
      skill_id: "stubborn",
      skill_url: data(`// @timeout 2
Deno.addSignalListener("SIGTERM", () => console.log("ha"));
console.log("spinning");
while (true) {}`),
    });
    assert.equal(final.status, "failed");
    const result = final.result as { reason: string; stdout: string; exitCode: number };
    assert.equal(result.reason, "timeout");
    assert.equal(result.stdout, "spinning\n");
    assert.ok(Date.now() - started < 15_000);
  });

  test("bad bodies, names and URLs get 4xx JSON and leave no request behind", async () => {
    const before = JSON.parse(stack.cli("list", "--json").out).requests.length;
    for (const body of [
      { skill_url: data("x") },
      { skill_id: "x", skill_url: data("x"), secrets: ["NOT_HELD"] },
      { skill_id: "x", skill_url: data("x"), secrets: ["HTTP_PROXY"] },
      { skill_id: "x", skill_url: data("x"), args: { DENO_DIR: "/" } },
      { skill_id: "x", skill_url: data("// @secrets FOO\nx"), secrets: ["BAR"] },
      { skill_id: "x", skill_url: "https://127.0.0.1/x" },
      { skill_id: "x", skill_url: "file:///etc/passwd" },
    ]) {
      const { status, json } = await stack.post(body);
      assert.ok(status >= 400 && status < 500, `${status} ${JSON.stringify(json)}`);
      assert.equal(typeof json.code, "string");
      assert.equal(typeof json.error, "string");
    }
    assert.equal(JSON.parse(stack.cli("list", "--json").out).requests.length, before);
  });

  test("each process holds only its own credentials", () => {
    const [runnerPid, gatewayPid] = stack.childPids();
    const environ = (pid: number) => readFileSync(`/proc/${pid}/environ`, "utf8").split("\0");
    const cmd = (pid: number) => readFileSync(`/proc/${pid}/cmdline`, "utf8");
    assert.match(cmd(runnerPid!), /vault-runner/);
    assert.match(cmd(gatewayPid!), /gateway/);
    const runnerEnv = environ(runnerPid!);
    const gatewayEnv = environ(gatewayPid!);
    assert.ok(!runnerEnv.some((e) => e.startsWith("TELEGRAM_") || e.includes(TOKEN)), "runner env has no token");
    assert.ok(
      gatewayEnv.some((e) => e.startsWith("TELEGRAM_BOT_TOKEN=")),
      "gateway does hold the token",
    );
    assert.ok(!gatewayEnv.some((e) => e.startsWith("SECRETS_") || e.includes(FOO) || e.includes(BAR)));
    // The operator socket is the gateway's alone.
    assert.equal(statSync(stack.operatorSocket).mode & 0o777, 0o600);
  });

  test("curl submits as an agent; the same request as a web page or through a rebound name is refused", () => {
    const curl = (...args: string[]) =>
      spawnSync("curl", ["-s", "-o", "/dev/null", "-w", "%{http_code}", ...args], { encoding: "utf8" }).stdout;
    const body = JSON.stringify({ skill_id: "curl", skill_url: data("console.log('curl')") });
    const before = JSON.parse(stack.cli("list", "--json").out).requests.length;
    assert.equal(curl("-X", "POST", `${stack.baseUrl}/execute`, "-H", "Content-Type: application/json", "-d", body), "200");
    assert.equal(curl("-X", "POST", `${stack.baseUrl}/execute`, "-H", "Content-Type: text/plain", "-d", body), "415");
    assert.equal(
      curl(
        "-X",
        "POST",
        `${stack.baseUrl}/execute`,
        "-H",
        "Content-Type: application/json",
        "-H",
        "Origin: https://evil.example",
        "-d",
        body,
      ),
      "403",
    );
    assert.equal(curl(`${stack.baseUrl}/health`, "-H", "Host: rebind.evil.example"), "403");
    assert.equal(JSON.parse(stack.cli("list", "--json").out).requests.length, before + 1, "only curl's own request was stored");
  });

  test("the operator's terminal cannot be made to lie: show, pending and --json hold no raw control byte; --raw gives the exact bytes to a pipe", async () => {
    // An ESC sequence that clears the line, a CR that rewrites it, a bidi override, a line separator,
    // C1 CSI, a tag character: in the code, the description and an arg.
    const code =
      "// @description looks\u2028Secrets: none \u202eexe.txt\nconsole.log('shown');\u001b[2K\rconsole.log('hidden') \u009b31m \u{e0041}\n";
    const { json } = await stack.post({
      skill_id: "terminal",
      skill_url: data(code),
      args: { note: "\u001b]0;title\u0007\u202eevil\u2029" },
    });
    const id = String(json.request_id);
    const unsafe = /[\u0000-\u0008\u000b-\u001f\u007f-\u009f\u2028\u2029\u202a-\u202e\u2066-\u2069\u200b-\u200f]|\u{e0041}/u;
    for (const args of [["show", id], ["pending"], ["show", id, "--json"], ["pending", "--json"]]) {
      const r = stack.cli(...args);
      assert.equal(r.code, 0, r.out);
      assert.doesNotMatch(r.out, unsafe, `${args.join(" ")} printed a raw control or invisible character`);
    }
    const shown = stack.cli("show", id).out;
    assert.match(shown, /\\u001b\[2K\\u000dconsole\.log\('hidden'\)/, "the hidden statement is visible");
    assert.match(shown, /WARNING: The code contains hidden, control or direction-changing characters/);
    assert.match(shown, /^ {2}note = .*\\u202eevil\\u2029/m);
    assert.match(shown, /WARNING: Hidden or direction-changing characters were shown as \\u escapes in: .*arg note/);
    assert.match(shown, new RegExp(`^request ${id}$`, "m"));
    assert.match(shown, /^secrets: {2}none$/m);
    assert.match(shown, /^code: {5}\d+ bytes, sha256 [0-9a-f]{64}$/m);
    assert.match(stack.cli("pending").out, /WARNING: Hidden or direction-changing characters were shown as \\u escapes in: .*arg note/);
    // The CLI renders the very statement the card was made of (the operator socket returns it).
    const statement = JSON.parse(stack.cli("show", id, "--json").out).statement as { warnings: Array<{ title: string }> };
    for (const w of statement.warnings) assert.ok(shown.includes(`WARNING: ${w.title}`), w.title);
    // --json stays valid JSON with the very same strings.
    assert.equal(JSON.parse(stack.cli("show", id, "--json").out).code, code);
    // --raw: the exact bytes into a pipe (spawnSync's stdout is a pipe, not a terminal).
    const raw = stack.cli("show", id, "--raw");
    assert.equal(raw.out, `${code}\n`);
  });

  test("health names the isolation in force", async () => {
    const health = (await (await fetch(`${stack.baseUrl}/health`)).json()) as Record<string, unknown>;
    assert.equal(health.status, "ok");
    assert.equal(health.telegram_configured, true);
    assertHealthMode(health); // and the modes CI pins (OAUTH3_EXPECT_*)
    assert.ok(!JSON.stringify(health).includes(TOKEN));
  });

  test("restart: a pending request survives and is approvable", async () => {
    const { json } = await stack.post({ skill_id: "later", skill_url: data("console.log('after restart')") });
    const id = String(json.request_id);
    assert.equal(await stack.stop(), 0, "clean shutdown");
    await stack.start();
    assert.equal((await stack.status(id)).status, "pending");
    assert.equal(stack.cli("approve", id).code, 0);
    const final = await stack.waitFinal(id);
    assert.equal((final.result as { stdout: string }).stdout, "after restart\n");
    assert.equal(stack.cli("approve", id).code, 1, "a second approval is refused");
  });

  test("no secret value or token in any log, database or state file", () => {
    const hits: string[] = [];
    const walk = (d: string) => {
      for (const entry of readdirSync(d, { withFileTypes: true })) {
        const p = join(d, entry.name);
        if (entry.isDirectory()) walk(p);
        else if (entry.isFile() && entry.name !== "secrets.env") {
          const bytes = readFileSync(p);
          for (const s of SENSITIVE) if (bytes.includes(s)) hits.push(`${p}: ${s.slice(0, 6)}…`);
        }
      }
    };
    walk(dir);
    assert.deepEqual(hits, []);
    assert.ok(stack.log().includes("vault-runner listening"), "the log was actually captured");
  });
});

describe("refusing to start with the other side's credentials", () => {
  const run = (entry: string, env: Record<string, string>) =>
    spawnSync(process.execPath, ["--import", import.meta.resolve("tsx"), join(ROOT, entry)], {
      env: { PATH: process.env.PATH, ...env },
      encoding: "utf8",
      timeout: 20_000,
      cwd: tempDir(),
    });

  test("a gateway without its runner says so: 503 runner_unavailable, health degraded", async () => {
    const port = await freePort();
    const cwd = tempDir();
    const child = spawn(process.execPath, ["--import", import.meta.resolve("tsx"), join(ROOT, "gateway/src/main.ts")], {
      cwd,
      env: { PATH: process.env.PATH, PORT: String(port), RUNNER_SOCKET: join(cwd, "nobody.sock") },
      stdio: "ignore",
    });
    try {
      let health: Response | undefined;
      for (let i = 0; i < 100 && !health; i++) {
        health = await fetch(`http://127.0.0.1:${port}/health`).catch(() => undefined);
        if (!health) await new Promise((r) => setTimeout(r, 100));
      }
      assert.equal(health!.status, 503);
      assert.equal(((await health!.json()) as { status: string }).status, "degraded");
      const res = await fetch(`http://127.0.0.1:${port}/execute`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ skill_id: "x", skill_url: "data:text/typescript,1" }),
      });
      assert.equal(res.status, 503);
      assert.equal(((await res.json()) as { code: string }).code, "runner_unavailable");
    } finally {
      child.kill();
    }
  });

  test("the runner refuses a Telegram token; the gateway refuses secrets and unknown modes", () => {
    const r = run("vault-runner/src/main.ts", { TELEGRAM_BOT_TOKEN: TOKEN });
    assert.equal(r.status, 1);
    assert.match(r.stderr, /refuses to start: its environment contains TELEGRAM_BOT_TOKEN/);
    assert.ok(!r.stderr.includes(TOKEN) && !r.stdout.includes(TOKEN));
    const g = run("gateway/src/main.ts", { SECRETS_FILE: "/x" });
    assert.equal(g.status, 1);
    assert.match(g.stderr, /refuses to start: its environment contains SECRETS_FILE/);
    const m = run("gateway/src/main.ts", { EXECUTOR_MODE: "docker", TELEGRAM_BOT_TOKEN: TOKEN });
    assert.equal(m.status, 1);
    assert.match(m.stderr, /EXECUTOR_MODE=docker is not supported/);
    assert.ok(!m.stderr.includes(TOKEN));
  });
});
