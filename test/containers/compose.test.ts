/**
 * The deployment under a real Docker engine: local base image (Docker Hub is unreachable), both
 * images built from the real Dockerfiles, the real compose.yaml started with a test override, and
 * the split checked from inside the containers. Without an engine this fails in CI (CI runs as root
 * and .ci/run starts dockerd) and is skipped, loudly, elsewhere.
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdirSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { freePort, ROOT } from "../helpers/stack.ts";
import { tempDir } from "../helpers/tmp.ts";

const engine = spawnSync("docker", ["info"], { stdio: "ignore", timeout: 20_000 }).status === 0;
const NO_ENGINE = "needs a Docker engine: apt-get install docker.io docker-compose debootstrap, then start dockerd";
if (!engine) {
  process.stderr.write(`SKIPPED (this machine): ${NO_ENGINE}\n`);
  // CI's full run pins it: there a missing engine is a failure, not a skip.
  if (process.env.OAUTH3_EXPECT_DOCKER) test("a Docker engine is reachable (OAUTH3_EXPECT_DOCKER)", () => assert.fail(NO_ENGINE));
}

const TOKEN = "6666666:AAcontainer-token-never-in-the-runner";
const KEY = "sk-ant-container-test-0b7e";
const FILE_VALUE = "file-token-container-5c2d";
/** Phala's way: the encrypted env becomes docker-compose's environment; compose.yaml names it for the runner. */
const SECRETS_JSON = JSON.stringify({ ANTHROPIC_API_KEY: { value: KEY, bind: "env" } });
/** The binding of the SECRETS_DIR secret, which comes without one. */
const RUNNER_BINDINGS = "FILE_TOKEN env";
const CHAT = 7001;
const project = `oauth3test${process.pid}`;
const secrets = tempDir("oauth3-ctr-secrets-");
let controlPort = 0;

function sh(cmd: string, args: string[], opts: { input?: string; allowFail?: boolean; timeout?: number } = {}): string {
  const r = spawnSync(cmd, args, {
    cwd: ROOT,
    encoding: "utf8",
    timeout: opts.timeout ?? 600_000,
    input: opts.input,
    env: {
      ...process.env,
      DOCKER_BUILDKIT: "0",
      FAKE_TELEGRAM_TOKEN: TOKEN,
      OAUTH3_REPO: ROOT,
      OAUTH3_TEST_SECRETS: secrets,
      FAKE_TELEGRAM_CONTROL_PORT: String(controlPort),
      SECRETS_JSON,
      RUNNER_BINDINGS,
    },
  });
  if (r.status !== 0 && !opts.allowFail) throw new Error(`${cmd} ${args.join(" ")} failed (${r.status}):\n${r.stdout}\n${r.stderr}`);
  return `${r.stdout}${r.stderr}`;
}
const compose = (...args: string[]) =>
  sh("docker-compose", ["-p", project, "-f", "compose.yaml", "-f", "test/containers/compose.test.yaml", ...args]);
const inContainer = (service: string, script: string, allowFail = false) =>
  sh(
    "docker-compose",
    ["-p", project, "-f", "compose.yaml", "-f", "test/containers/compose.test.yaml", "exec", "-T", service, "sh", "-c", script],
    { allowFail },
  );
const nodeIn = (service: string, js: string) =>
  sh(
    "docker-compose",
    ["-p", project, "-f", "compose.yaml", "-f", "test/containers/compose.test.yaml", "exec", "-T", service, "node", "-e", js],
    { allowFail: true },
  );

/** The agent's view: HTTP to the gateway from the openclaw container. */
function agent(method: string, path: string, body?: unknown, host = "oauth3-proxy"): Record<string, any> {
  const js = `fetch("http://${host}:3737${path}", { method: "${method}", headers: { "content-type": "application/json" }${body ? `, body: ${JSON.stringify(JSON.stringify(body))}` : ""} }).then(async (r) => console.log(JSON.stringify({ status: r.status, body: await r.json() })))`;
  const out = nodeIn("openclaw", `${js}.catch((e) => console.log(JSON.stringify({ status: 0, error: String(e) })))`)
    .trim()
    .split("\n")
    .at(-1)!;
  try {
    return JSON.parse(out);
  } catch {
    return { status: 0, error: out };
  }
}

/**
 * The fake Bot API's control port, published through docker-proxy, which sometimes closes an idle
 * keep-alive connection just as it is reused ("other side closed"): a network error is retried. A
 * repeated press is harmless (the gateway answers "Already approved" and changes nothing).
 */
/** Live (not zombie) host processes whose command line names `needle` (container processes included). */
function liveProcessesNaming(needle: string): number[] {
  const pids: number[] = [];
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      if (
        readFileSync(`/proc/${entry}/cmdline`, "utf8").includes(needle) &&
        !/^State:\s+Z/m.test(readFileSync(`/proc/${entry}/status`, "utf8"))
      ) {
        pids.push(Number(entry));
      }
    } catch {
      // gone while we looked
    }
  }
  return pids;
}

async function control(path: string, body?: unknown): Promise<any> {
  for (let attempt = 0; ; attempt++) {
    try {
      const r = await fetch(`http://127.0.0.1:${controlPort}${path}`, body ? { method: "POST", body: JSON.stringify(body) } : {});
      return await r.json();
    } catch (err) {
      if (attempt >= 4) throw err;
      await new Promise((r) => setTimeout(r, 200));
    }
  }
}

async function until<T>(check: () => Promise<T | undefined> | T | undefined, ms = 60_000): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await check();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error("condition not met in time");
    await new Promise((r) => setTimeout(r, 250));
  }
}

async function approveViaTelegram(id: string): Promise<void> {
  const card = await until(async () =>
    (await control("/messages")).find((m: any) => m.text?.includes(id) && m.reply_markup?.inline_keyboard?.length),
  );
  const approve = card.reply_markup.inline_keyboard.flat().find((b: any) => b.callback_data.startsWith("a:")).callback_data;
  await control("/press", { fromId: CHAT, chatId: CHAT, messageId: card.message_id, data: approve });
}

function finalStatus(id: string): Promise<Record<string, any>> {
  return until(() => {
    const s = agent("GET", `/execute/${id}/status`).body;
    return ["pending", "approved", "executing"].includes(s.status) ? undefined : s;
  }, 90_000);
}

describe("containers", { skip: !engine && NO_ENGINE }, () => {
  before(async () => {
    controlPort = await freePort();
    mkdirSync(secrets, { recursive: true });
    writeFileSync(join(secrets, "FILE_TOKEN"), FILE_VALUE, { mode: 0o600 });
    sh("bash", ["test/containers/build-images.sh"]);
    compose("up", "-d", "--no-build");
    await until(() => (agent("GET", "/health").body?.status === "ok" ? true : undefined), 90_000);
  });
  after(() => {
    if (!engine) return;
    console.error(compose("logs", "--no-color", "--tail", "25"));
    sh("docker-compose", ["-p", project, "-f", "compose.yaml", "-f", "test/containers/compose.test.yaml", "down", "-v"], {
      allowFail: true,
    });
  });

  test("the runner container holds no Telegram token, in env or files", () => {
    const env = inContainer("vault-runner", "cat /proc/1/environ | tr '\\0' '\\n'; env");
    assert.ok(!env.includes(TOKEN) && !env.includes("TELEGRAM"), env);
    const grep = inContainer(
      "vault-runner",
      `grep -rl --exclude-dir=proc --exclude-dir=sys --exclude-dir=node_modules '${TOKEN}' / 2>/dev/null || echo NONE`,
      true,
    );
    assert.equal(grep.trim(), "NONE");
  });

  test("the gateway container can read no secret value (env, files, /proc), nor SECRETS_JSON", () => {
    const out = inContainer(
      "gateway",
      "cat /proc/*/environ 2>/dev/null | tr '\\0' '\\n'; ls /run/secrets 2>&1; cat /run/secrets/* 2>&1; " +
        `grep -rlE --exclude-dir=proc --exclude-dir=sys '${KEY}|${FILE_VALUE}' / 2>/dev/null || echo NONE`,
      true,
    );
    assert.ok(!out.includes(KEY) && !out.includes(FILE_VALUE) && !out.includes("SECRETS_JSON"), out);
    const cfg = JSON.parse(sh("docker", ["inspect", `${project}_gateway_1`])) as Array<{ Config: { Env: string[] } }>;
    assert.ok(!JSON.stringify(cfg[0]!.Config.Env).includes(KEY), "not in the gateway container's config either");
    assert.match(out, /No such file or directory/, "no secrets mount in the gateway");
    assert.match(out, /NONE/);
    const health = agent("GET", "/health").body;
    assert.equal(health.isolation, "per-run-uid");
    assert.equal(health.egress, "proxy+firewall");
  });

  test("the agent container cannot open the runner socket", () => {
    const out = nodeIn(
      "openclaw",
      `require("net").connect("/run/oauth3/sock/runner.sock").on("connect", () => console.log("CONNECTED")).on("error", (e) => console.log("ERR", e.code))`,
    );
    assert.match(out, /ERR ENOENT/);
    const dstack = inContainer("openclaw", "ls /var/run/dstack.sock 2>&1", true);
    assert.match(dstack, /No such file/);
  });

  test("a skill submitted over HTTP and approved in Telegram runs in the runner, redacted", async () => {
    const sub = agent("POST", "/execute", {
      skill_id: "container-check",
      skill_url: `data:text/typescript,${encodeURIComponent(`// @secrets ANTHROPIC_API_KEY\nconsole.log("key", Deno.env.get("ANTHROPIC_API_KEY"), "token", Deno.env.get("TELEGRAM_BOT_TOKEN") ?? "none")`)}`,
      secrets: ["ANTHROPIC_API_KEY"],
    });
    assert.equal(sub.status, 200, JSON.stringify(sub));
    await approveViaTelegram(sub.body.request_id);
    const final = await finalStatus(sub.body.request_id);
    // TELEGRAM_BOT_TOKEN is not granted: Deno refuses the read, and the runner has no such variable.
    assert.equal(final.status, "failed", JSON.stringify(final));
    assert.match(final.result.stderr, /NotCapable: Requires env access to "TELEGRAM_BOT_TOKEN"/, JSON.stringify(final));
    // One secret from SECRETS_JSON (the Phala env path), one from a compose file secret (SECRETS_DIR).
    const ok = agent(
      "POST",
      "/execute",
      {
        skill_id: "container-key",
        skill_url: `data:text/typescript,${encodeURIComponent(`// @secrets ANTHROPIC_API_KEY, FILE_TOKEN
const k = Deno.env.get("ANTHROPIC_API_KEY")!, f = Deno.env.get("FILE_TOKEN")!;
console.log("key", k, k.length, "file", f, f.length);`)}`,
        secrets: ["ANTHROPIC_API_KEY", "FILE_TOKEN"],
      },
      "gateway",
    ); // the second name answers too
    assert.equal(ok.status, 200, JSON.stringify(ok));
    await approveViaTelegram(ok.body.request_id);
    const done = await finalStatus(ok.body.request_id);
    assert.equal(done.status, "completed", JSON.stringify(done));
    assert.equal(done.result.stdout, `key [REDACTED:ANTHROPIC_API_KEY] ${KEY.length} file [REDACTED:FILE_TOKEN] ${FILE_VALUE.length}\n`);
    assert.equal(done.result.policy.isolation, "per-run-uid");
    assert.ok(!JSON.stringify(done).includes(KEY));
    // Run directories (including the skill-owned DENO_DIR) are gone again.
    assert.equal(inContainer("vault-runner", "ls -A /tmp/oauth3-work-*/ | grep -c exec_ || true").trim(), "0");
  });

  test("attestation from inside the deployment: the receipt key comes from the (fake) dstack agent", () => {
    const out = inContainer("gateway", "oauth3 verify --json");
    const v = JSON.parse(out) as { ok: boolean; attested: boolean; evidence: { statement: Record<string, unknown>; policy: any } };
    assert.equal(v.ok, true, out);
    assert.equal(v.attested, true);
    assert.equal(v.evidence.statement.runnerKeySource, "dstack");
    assert.equal(v.evidence.policy.gateway.telegram.chatId, CHAT);
    assert.equal(v.evidence.policy.runner.isolation, "per-run-uid");
    assert.ok(!out.includes(KEY) && !out.includes(TOKEN));
    // A skill's uid cannot even reach the dstack socket (its directory is the runner's, 0700).
    const probe = inContainer(
      "vault-runner",
      `setpriv --reuid=61007 --regid=61007 --clear-groups node -e "require('net').connect('/run/dstack-runner/dstack.sock').on('connect',()=>console.log('CONNECTED')).on('error',(e)=>console.log('ERR',e.code))"`,
      true,
    );
    assert.match(probe, /ERR EACCES/);
  });

  test("SECRETS_JSON: where it remains visible (the runner's uid 0, docker inspect) and that skill uids cannot read it", async () => {
    // As deploy/phala.md says: the runner's own processes were started with it (root in the container).
    const asRoot = inContainer(
      "vault-runner",
      "for p in /proc/[0-9]*; do tr '\\0' '\\n' < $p/environ 2>/dev/null | grep -c '^SECRETS_JSON=' | sed \"s|^|$(cat $p/comm) |\"; done",
      true,
    );
    assert.match(asRoot, /^tini 1$/m, asRoot);
    assert.match(asRoot, /^node 1$/m, asRoot);
    // ... and the engine's container config (whoever holds the Docker socket, i.e. root in the CVM).
    const cfg = JSON.parse(sh("docker", ["inspect", `${project}_vault-runner_1`])) as Array<{ Config: { Env: string[] } }>;
    assert.ok(cfg[0]!.Config.Env.some((e) => e.startsWith("SECRETS_JSON=")));
    // A skill uid reads none of it: not the runner's environ, not the secret files, not the state.
    const probe = inContainer(
      "vault-runner",
      "for f in /etc/hostname /proc/*/environ /run/secrets/FILE_TOKEN /var/lib/oauth3-runner/ledger/data.mdb; do " +
        'setpriv --reuid=61005 --regid=61005 --clear-groups cat $f >/dev/null 2>&1 && echo "READ $f"; done; echo done',
      true,
    );
    assert.match(probe, /^READ \/etc\/hostname$/m, `control: the probe itself works\n${probe}`);
    assert.doesNotMatch(probe, /READ .*(\/proc\/(1|\d+)\/environ|FILE_TOKEN|data\.mdb)/, probe);
    // A real skill (Deno, per-run uid) trying the runner's environ by static import: EACCES.
    const runnerPid = inContainer(
      "vault-runner",
      `for p in /proc/[0-9]*; do case "$(tr '\\0' ' ' < $p/cmdline 2>/dev/null)" in ` +
        `"node --enable-source-maps dist/vault-runner.mjs "*) echo \${p#/proc/};; esac; done`,
      true,
    )
      .trim()
      .split("\n")[0];
    const sub = agent("POST", "/execute", {
      skill_id: "environ-probe",
      skill_url: `data:text/typescript,${encodeURIComponent(`for (const p of ["/proc/1/environ", "/proc/${runnerPid}/environ"]) {
  try { const m = await import(p, { with: { type: "text" } }); console.log("READ", m.default.includes("SECRETS_JSON")); }
  catch (e) { console.log("blocked", String(e).replace(/\\s+/g, " ").slice(0, 160)); } }`)}`,
    });
    await approveViaTelegram(sub.body.request_id);
    const final = await finalStatus(sub.body.request_id);
    // Deno refuses it first (a /proc path needs read permission); the uid would refuse it anyway (above).
    assert.match(
      final.result.stdout,
      /^blocked .*(Requires read access|Permission denied).*\nblocked .*(Requires read access|Permission denied).*\n$/,
      JSON.stringify(final.result),
    );
    const logs = compose("logs", "--no-color");
    assert.ok(!logs.includes(KEY) && !logs.includes(FILE_VALUE), "no secret in any container's log");
  });

  test("both images run the esbuild bundles: no tsx, TypeScript or sources at run time; `oauth3` is the CLI bundle", () => {
    for (const [service, bundle] of [
      ["gateway", "dist/gateway.mjs"],
      ["vault-runner", "dist/vault-runner.mjs"],
    ] as const) {
      const cmdlines = inContainer(service, "for p in /proc/[0-9]*; do tr '\\0' ' ' < $p/cmdline 2>/dev/null; echo; done", true);
      assert.match(cmdlines, new RegExp(`^node --enable-source-maps ${bundle.replace(".", "\\.")} $`, "m"), cmdlines);
      assert.doesNotMatch(cmdlines, /tsx|\.ts\b/, cmdlines);
      const files = inContainer(
        service,
        "ls -d node_modules/tsx node_modules/typescript node_modules/esbuild 2>&1; " +
          "find / -xdev \\( -path /proc -o -path /sys -o -path /app/node_modules \\) -prune -o -name '*.ts' -print 2>/dev/null | grep -v '\\.d\\.ts$' | head -5; ls /app /app/dist",
        true,
      );
      assert.equal((files.match(/No such file or directory/g) ?? []).length, 3, files);
      assert.doesNotMatch(files, /\.ts$/m, files);
    }
    assert.match(
      inContainer("gateway", "readlink -f $(command -v oauth3); oauth3 --help | head -1"),
      /^\/app\/dist\/oauth3\.mjs\nusage: oauth3 <command>/,
    );
  });

  test("self-audit inside the deployment: separate containers pass every check", () => {
    const out = inContainer("gateway", "oauth3 self-audit --json");
    const audit = JSON.parse(out) as {
      ok: boolean;
      checks: { check: string; status: string; detail: string }[];
      gateway: any;
      runner: any;
    };
    assert.equal(audit.ok, true, out);
    assert.deepEqual(
      audit.checks.filter((c) => c.status !== "ok"),
      [],
      out,
    );
    assert.equal(audit.gateway.uid, 10001);
    assert.notEqual(audit.gateway.pidNamespace, audit.runner.pidNamespace);
    assert.ok(
      audit.gateway.envNames.includes("TELEGRAM_BOT_TOKEN") && !audit.runner.envNames.some((n: string) => n.startsWith("TELEGRAM")),
    );
    assert.ok(!out.includes(KEY) && !out.includes(TOKEN));
  });

  test("kill -9 of the runner mid-run: the skill dies with it, the request ends interrupted, the runner comes back", async () => {
    const sub = agent("POST", "/execute", {
      skill_id: "sleeper",
      skill_url: `data:text/typescript,${encodeURIComponent(`// @secrets ANTHROPIC_API_KEY\nconst k = Deno.env.get("ANTHROPIC_API_KEY"); await new Promise((r) => setTimeout(r, 25000)); console.log(k.length);`)}`,
      secrets: ["ANTHROPIC_API_KEY"],
    });
    const id = sub.body.request_id as string;
    await approveViaTelegram(id);
    // The host sees the container's processes (uids are not namespaced): find the skill by its run dir.
    const skillPids = () => liveProcessesNaming(id);
    await until(() => (skillPids().length > 0 ? true : undefined), 30_000);
    inContainer(
      "vault-runner",
      `for p in /proc/[0-9]*; do case "$(tr '\\0' ' ' < $p/cmdline 2>/dev/null)" in ` +
        `"node --enable-source-maps dist/vault-runner.mjs "*) kill -9 \${p#/proc/};; esac; done`,
      true,
    );
    await new Promise((r) => setTimeout(r, 1000));
    assert.deepEqual(skillPids(), [], "one second later nothing of the run is alive");
    const final = await finalStatus(id);
    assert.equal(final.status, "interrupted", JSON.stringify(final));
    assert.match(final.error, /stopped answering during the run .*will not be run again/);
    await until(() => (agent("GET", "/health").body?.runner_reachable === true ? true : undefined), 90_000);
  });

  test("docker-compose down && up keeps pending requests (volumes)", async () => {
    const sub = agent("POST", "/execute", { skill_id: "survivor", skill_url: "data:text/typescript,console.log('survived')" });
    const id = sub.body.request_id;
    compose("down");
    compose("up", "-d", "--no-build");
    await until(() => (agent("GET", "/health").body?.status === "ok" ? true : undefined), 90_000);
    assert.equal(agent("GET", `/execute/${id}/status`).body.status, "pending");
    const approved = inContainer("gateway", `oauth3 approve ${id}`);
    assert.match(approved, /approved/);
    const final = await finalStatus(id);
    assert.equal(final.result.stdout, "survived\n");
  });
});
