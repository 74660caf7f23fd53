/**
 * Egress by address, enforced outside Deno: the runner's proxy resolves, checks and pins every
 * destination, and firewall rules leave the skill uids no other way out. The fake API plays a
 * remote service on 127.0.0.1; RUNNER_EGRESS_HOSTS makes test names resolve to internal addresses,
 * and only api.test.example:<port> is allowed to (RUNNER_EGRESS_ALLOW_PRIVATE).
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { createServer, type Server } from "node:net";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { serveLocal } from "../helpers/local-server.ts";
import { assertHealthMode, needs } from "../helpers/sandbox-mode.ts";
import { freePort, Stack } from "../helpers/stack.ts";
import { tempDir } from "../helpers/tmp.ts";

const SKIP = needs({ uid: true, proxy: true });
const KEY = "egress-api-key-5d8e1f";
const UID_BASE = 65000;
const dir = tempDir("oauth3-egress-");
writeFileSync(join(dir, "secrets.env"), `API_KEY=${KEY}\n`, { mode: 0o600 });
const hits: Array<{ path: string; key: string | undefined }> = [];
let apiPort = 0;
let weirdPort = 0;
let weird: Server | undefined;
let stack: Stack;

before(async () => {
  if (SKIP) return;
  ({ port: apiPort } = await serveLocal((req, res) => {
    hits.push({ path: req.url ?? "", key: req.headers["x-api-key"] as string | undefined });
    if (req.url === "/redirect") {
      res.writeHead(302, { location: `http://internal.test.example:${apiPort}/stolen` }).end();
      return;
    }
    res.end(JSON.stringify({ ok: true, path: req.url }));
  }));
  // An upstream that answers what no HTTP server should: a status Node's writeHead throws on.
  weird = createServer((socket) => {
    socket.on("error", () => undefined);
    socket.once("data", () => socket.end("HTTP/1.1 099 Weird\r\ncontent-length: 0\r\n\r\n"));
  });
  await new Promise<void>((r) => weird!.listen(0, "127.0.0.1", r));
  weirdPort = (weird.address() as { port: number }).port;
  stack = new Stack({
    dir,
    port: await freePort(),
    env: {
      SECRETS_FILE: join(dir, "secrets.env"),
      RUNNER_BINDINGS: "API_KEY env",
      RUNNER_SKILL_UID_BASE: String(UID_BASE),
      RUNNER_EGRESS_HOSTS:
        "api.test.example=127.0.0.1,weird.test.example=127.0.0.1,internal.test.example=127.0.0.1,v6.test.example=::1,mapped.test.example=::ffff:127.0.0.1,meta.test.example=169.254.169.254",
      RUNNER_EGRESS_ALLOW_PRIVATE: `api.test.example:${apiPort},weird.test.example:${weirdPort}`,
    },
  });
  await stack.start();
});
after(async () => {
  await stack?.stop();
  weird?.close();
});

const data = (code: string) => `data:text/typescript,${encodeURIComponent(code)}`;

async function run(code: string, secrets: string[] = []): Promise<Record<string, any>> {
  const { status, json } = await stack.post({ skill_id: "egress", skill_url: data(code), secrets });
  assert.equal(status, 200, JSON.stringify(json));
  const id = String(json.request_id);
  assert.equal(stack.cli("approve", id).code, 0);
  return stack.waitFinal(id);
}

describe("egress", { skip: SKIP }, () => {
  test("a granted host:port works through the proxy, with the secret", async () => {
    const final = await run(
      `// @secrets API_KEY
// @network api.test.example:${apiPort}
const r = await fetch("http://api.test.example:${apiPort}/v1/data", { headers: { "x-api-key": Deno.env.get("API_KEY")! } });
console.log(r.status, await r.text());`,
      ["API_KEY"],
    );
    assert.equal(final.status, "completed", JSON.stringify(final.result));
    assert.equal(final.result.stdout, `200 {"ok":true,"path":"/v1/data"}\n`);
    assert.deepEqual(hits.at(-1), { path: "/v1/data", key: KEY });
    assert.equal(final.result.policy.egress, "proxy+firewall");
    assert.deepEqual(final.result.policy.egress_private_allowed, [`api.test.example:${apiPort}`, `weird.test.example:${weirdPort}`]);
    const health = (await (await fetch(`${stack.baseUrl}/health`)).json()) as Record<string, unknown>;
    assert.equal(health.egress, "proxy+firewall");
    assertHealthMode(health);
  });

  test("an upstream answering HTTP/1.1 099 gets the skill a 502; the runner lives on and serves the next run", async () => {
    const [runnerBefore] = stack.childPids();
    const final = await run(`// @network weird.test.example:${weirdPort} api.test.example:${apiPort}
const weird = await fetch("http://weird.test.example:${weirdPort}/").then((r) => r.status, (e) => String(e));
const fine = await fetch("http://api.test.example:${apiPort}/after").then((r) => r.status);
console.log(weird, fine);`);
    assert.equal(final.status, "completed", JSON.stringify(final));
    assert.equal(final.result.stdout, "502 200\n");
    assert.equal(stack.childPids()[0], runnerBefore, "the same runner process");
    const next = await run("console.log('still here')");
    assert.equal(next.result.stdout, "still here\n");
  });

  test("declared names that resolve to internal addresses are refused by the proxy", async () => {
    const before = hits.length;
    for (const host of ["internal.test.example", "v6.test.example", "mapped.test.example", "meta.test.example"]) {
      const final = await run(`// @network ${host}:${apiPort}
try { const r = await fetch("http://${host}:${apiPort}/stolen"); console.log("status", r.status); }
catch (e) { console.log("blocked", e.name); }`);
      assert.equal(final.result.stdout, "status 403\n", `${host}: ${final.result.stdout}${final.result.stderr}`);
    }
    assert.equal(hits.length, before, "the internal service saw nothing");
    assert.match(stack.log(), /"target":"internal.test.example:\d+","why":"resolves to a non-public address","msg":"egress refused"/);
  });

  test("a redirect from the granted host to an internal one is not followed", async () => {
    const before = hits.length;
    const final = await run(`// @network api.test.example:${apiPort}
try { const r = await fetch("http://api.test.example:${apiPort}/redirect"); console.log("status", r.status, await r.text()); }
catch (e) { console.log("blocked", e.name); }`);
    assert.equal(final.result.stdout, "blocked NotCapable\n");
    assert.deepEqual(
      hits.slice(before).map((h) => h.path),
      ["/redirect"],
    );
  });

  test("raw sockets from a skill uid reach nothing; the same connect as the runner's uid works", () => {
    const probe = (uid?: number) =>
      spawnSync(
        process.execPath,
        [
          "-e",
          `const s = require("net").connect(${apiPort}, "127.0.0.1"); s.on("connect", () => { console.log("CONNECTED"); s.end(); }); s.on("error", (e) => console.log("ERR", e.code));`,
        ],
        { encoding: "utf8", timeout: 10_000, ...(uid !== undefined && { uid, gid: uid }) },
      );
    assert.equal(probe().stdout.trim(), "CONNECTED", "control: the port is open");
    assert.match(probe(UID_BASE).stdout.trim(), /^ERR (ECONNREFUSED|EPERM|EACCES)$/);
    assert.match(probe(UID_BASE + 3).stdout.trim(), /^ERR (ECONNREFUSED|EPERM|EACCES)$/);
  });

  test("nothing leaked: the key is nowhere in logs or state", () => {
    assert.ok(!stack.log().includes(KEY));
  });
});
