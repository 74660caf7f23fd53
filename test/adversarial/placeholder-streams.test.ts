/**
 * Request bodies and redirects in a run that holds placeholders, with real Deno, real TLS and the
 * runner's egress proxy (no root needed: the fake APIs listen on 127.0.0.2, named to the proxy).
 * Bodies over 1 MiB stream through the check: a body-bound placeholder is replaced wherever it falls
 * (also across the proxy's 1 MiB read and any chunk), a misplaced one cuts the upload off before it
 * leaves, the body cap gives a 413 after streaming up to it. A redirect from the
 * bound host to another allowed host is judged again: the header Deno carries along is refused there.
 * A WebSocket opens only toward a host whose binding says `websocket`, through the proxy's relay: the
 * value goes into the handshake and the skill's messages where bound, a misplaced placeholder in a
 * message closes the socket, and the host's messages reach the skill scrubbed.
 */
import assert from "node:assert/strict";
import { once } from "node:events";
import { readFileSync, writeFileSync } from "node:fs";
import { createServer as createHttpServer } from "node:http";
import { createServer, type Server } from "node:https";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { pino } from "pino";
import { WebSocketServer } from "ws";
import { runDenoStdin } from "../helpers/deno-stdin.ts";
import { tempDir } from "../helpers/tmp.ts";
import { makeTestCerts } from "../helpers/test-tls.ts";
import { parseBinding } from "../../vault-runner/src/bindings.ts";
import { EgressCa } from "../../vault-runner/src/egress-ca.ts";
import { EgressProxy, type EgressLease } from "../../vault-runner/src/egress-proxy.ts";
import { type HeldSecret, newPlaceholder } from "../../vault-runner/src/placeholders.ts";

const API = "api.bodies.example";
const OTHER = "other.bodies.example";
const PLAIN = "plain.bodies.example";
const VALUE = "body-SECRET-value-6d0c2e9a";
const CAP = 4 * 1024 * 1024;
const dir = tempDir("oauth3-bodies-");
type Hit = { host: string; path: string; headers: Record<string, string | string[] | undefined>; bytes: number; body: Buffer };
const hits: Hit[] = [];
/** What the fake API's WebSocket endpoint saw: each handshake's URL and each message. */
const wsSeen: { urls: string[]; messages: string[]; authorization: Array<string | undefined> } = {
  urls: [],
  messages: [],
  authorization: [],
};
const servers: Server[] = [];
let proxy: EgressProxy;
/** The same proxy without the test CA among its upstream roots: the fake APIs are untrusted to it. */
let strictProxy: EgressProxy;
let ports: { api: number; other: number; plain: number };
let bundle: string;

before(async () => {
  const certs = makeTestCerts(dir, [API, OTHER]);
  const serve = async (): Promise<number> => {
    const server = createServer({ key: certs.key, cert: certs.cert }, (req, res) => {
      const chunks: Buffer[] = [];
      req.on("data", (c: Buffer) => chunks.push(c));
      req.on("close", () => {
        const body = Buffer.concat(chunks);
        hits.push({ host: String(req.headers.host), path: req.url ?? "", headers: req.headers, bytes: body.length, body });
      });
      req.on("end", () => {
        if (req.url === "/redirect") {
          res.writeHead(302, { location: `https://${OTHER}:${ports.other}/landed` }).end();
          return;
        }
        res.end(`got ${Buffer.concat(chunks).length}`);
      });
    });
    // A WebSocket endpoint that echoes what it got and volunteers the value in two forms.
    new WebSocketServer({ server }).on("connection", (ws, req) => {
      wsSeen.urls.push(`${req.headers.host}${req.url}`);
      wsSeen.authorization.push(req.headers.authorization);
      ws.on("message", (m) => {
        wsSeen.messages.push(m.toString());
        ws.send(`echo ${m.toString()} raw=${VALUE} b64=${Buffer.from(VALUE).toString("base64")}`);
      });
    });
    server.listen(0, "127.0.0.2");
    await once(server, "listening");
    servers.push(server);
    return (server.address() as { port: number }).port;
  };
  // A plain-http API: a value never goes there, and a placeholder there is refused.
  const plain = createHttpServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("close", () => {
      const body = Buffer.concat(chunks);
      hits.push({ host: String(req.headers.host), path: req.url ?? "", headers: req.headers, bytes: body.length, body });
    });
    req.on("end", () => res.end(`got ${Buffer.concat(chunks).length}`));
  });
  plain.listen(0, "127.0.0.2");
  await once(plain, "listening");
  servers.push(plain as unknown as Server);
  ports = { api: await serve(), other: await serve(), plain: (plain.address() as { port: number }).port };
  const ca = await EgressCa.create();
  const proxyOptions = {
    allowPrivate: new Set([`${API}:${ports.api}`, `${OTHER}:${ports.other}`, `${PLAIN}:${ports.plain}`]),
    staticHosts: new Map([
      [API, "127.0.0.2"],
      [OTHER, "127.0.0.2"],
      [PLAIN, "127.0.0.2"],
    ]),
    logger: pino({ level: "silent" }),
    ca,
    extraUpstreamCa: readFileSync(certs.ca, "utf8"),
    maxBodyBytes: CAP,
  };
  proxy = new EgressProxy(proxyOptions);
  await proxy.start();
  strictProxy = new EgressProxy({ ...proxyOptions, extraUpstreamCa: undefined });
  await strictProxy.start();
  bundle = join(dir, "skill-ca.pem");
  writeFileSync(bundle, ca.certPem);
});
after(async () => {
  await proxy.stop();
  await strictProxy.stop();
  for (const s of servers) s.close();
});

function hold(binding: string, name = "API_KEY", value = VALUE): HeldSecret {
  const b = parseBinding(name, binding.replace("API", `${API}:${ports.api}`), "test");
  assert.equal(b.mode, "placeholder");
  return { name, value, placeholder: newPlaceholder(), binding: b as Extract<typeof b, { mode: "placeholder" }> };
}

/** Runs `code` in Deno through a lease holding `secret`; the skill prints one JSON line. */
async function skill(
  secret: HeldSecret,
  code: string,
  more: HeldSecret[] = [],
  via = proxy,
): Promise<{ out: Record<string, unknown>; lease: EgressLease; stderr: string }> {
  const hosts = [`${API}:${ports.api}`, `${OTHER}:${ports.other}`, `${PLAIN}:${ports.plain}`];
  const lease = via.lease(`bodies_${Math.random()}`, hosts, [secret, ...more]);
  try {
    const names = [secret, ...more].map((s) => s.name).join(",");
    const { status, stdout, stderr } = await runDenoStdin(
      dir,
      [`--allow-net=${hosts.join(",")}`, `--allow-env=${names}`],
      {
        HTTPS_PROXY: lease.proxyUrl,
        HTTP_PROXY: lease.proxyUrl,
        DENO_CERT: bundle,
        ...Object.fromEntries([secret, ...more].map((s) => [s.name, s.placeholder])),
      },
      `const key = Deno.env.get("API_KEY")!;
const api = "https://${API}:${ports.api}";
const result: Record<string, unknown> = {};
try { ${code} } catch (e) { result.error = String(e); }
console.log(JSON.stringify(result));`,
    );
    assert.equal(status, 0, stderr);
    return { out: JSON.parse(stdout) as Record<string, unknown>, lease, stderr };
  } finally {
    lease.release();
  }
}

/** A body of `size` bytes of filler with `key` written at each offset (a JS expression for Deno). */
const bodyWith = (size: number, offsets: number[]) =>
  `(() => { const b = new Uint8Array(${size}).fill(46); const p = new TextEncoder().encode(key);
    for (const at of ${JSON.stringify(offsets)}) b.set(p, at); return b; })()`;

test("a 3 MiB body bound to the host streams with the value put in at every place, across the 1 MiB read", async () => {
  hits.length = 0;
  const secret = hold("API body,header:x-api-key");
  const size = 3 * 1024 * 1024;
  const offsets = [0, 1024 * 1024 - 20, 2 * 1024 * 1024 + 7, size - 52];
  const { out, lease } = await skill(
    secret,
    `const r = await fetch(api + "/upload", { method: "POST", headers: { "x-api-key": key }, body: ${bodyWith(size, offsets)} });
     result.status = r.status; result.text = await r.text();`,
  );
  const hit = hits.find((h) => h.path === "/upload");
  assert.ok(hit, JSON.stringify(out));
  const expected = size + offsets.length * (VALUE.length - secret.placeholder.length);
  assert.deepEqual(out, { status: 200, text: `got ${expected}` });
  assert.equal(hit.headers["x-api-key"], VALUE);
  assert.equal(hit.headers["transfer-encoding"], "chunked", "its length changed on the way, so it went out chunked");
  assert.equal(hit.headers["content-length"], undefined);
  const text = hit.body.toString("latin1");
  assert.equal(text.split(VALUE).length - 1, offsets.length);
  assert.ok(!text.includes(secret.placeholder));
  assert.ok(text.startsWith(VALUE) && text.endsWith(VALUE));
  assert.deepEqual(lease.violations, []);
  assert.ok(lease.used.has("API_KEY"));
});

test("a misplaced placeholder 2 MiB into a streamed body cuts the upload off there: refused, recorded, never sent", async () => {
  hits.length = 0;
  const secret = hold("API header:x-api-key");
  const size = 3 * 1024 * 1024;
  // A ReadableStream: Deno sends it chunked, so the proxy cannot know its length in advance.
  const { out, lease } = await skill(
    secret,
    `const whole = ${bodyWith(size, [2 * 1024 * 1024])};
     const body = new ReadableStream({ start(c) { for (let i = 0; i < whole.length; i += 65536) c.enqueue(whole.slice(i, i + 65536)); c.close(); } });
     const r = await fetch(api + "/leak", { method: "POST", headers: { "x-api-key": key }, body });
     result.status = r.status; result.text = await r.text();`,
  );
  if (out.error === undefined) {
    assert.equal(out.status, 403, JSON.stringify(out));
    assert.match(String(out.text), /API_KEY may not be sent to api\.bodies\.example:\d+ in body/);
  }
  assert.deepEqual(lease.violations, [{ secret: "API_KEY", host: `${API}:${ports.api}`, where: "body" }]);
  const hit = hits.find((h) => h.path === "/leak");
  // The upstream may have seen the start of the upload (cut off, so it never answered it).
  if (hit) {
    assert.ok(hit.bytes <= 2 * 1024 * 1024, `${hit.bytes} bytes reached the API`);
    assert.ok(!hit.body.toString("latin1").includes(secret.placeholder.slice(0, 9 + 8)));
    assert.equal(hit.headers["x-api-key"], VALUE, "its header was allowed; only the body was not");
  }
  assert.ok(!lease.used.has("API_KEY"), "the API never answered a request with the value");
});

test("a small body with a misplaced placeholder reaches no upstream at all", async () => {
  hits.length = 0;
  const secret = hold("API header:x-api-key");
  const { out, lease } = await skill(
    secret,
    `const r = await fetch(api + "/small", { method: "POST", headers: { "x-api-key": key }, body: "k=" + key });
     result.status = r.status; await r.text();`,
  );
  assert.deepEqual(out, { status: 403 });
  assert.equal(hits.length, 0, "nothing was sent");
  assert.equal(lease.violations.length, 1);
});

test("a body over RUNNER_EGRESS_BODY_MAX_MB streams up to the cap and is cut off there with a 413", async () => {
  hits.length = 0;
  const secret = hold("API body,header:x-api-key");
  const { out, lease } = await skill(
    secret,
    `const r = await fetch(api + "/big", { method: "POST", headers: { "x-api-key": key }, body: ${bodyWith(CAP + 2 * 1024 * 1024, [10])} });
     result.status = r.status; result.text = await r.text();`,
  );
  if (out.error === undefined) {
    assert.equal(out.status, 413, JSON.stringify(out));
    assert.match(String(out.text), /over the runner's cap \(4 MiB, RUNNER_EGRESS_BODY_MAX_MB\)/);
  }
  // The upload went out while it arrived (a proxy reading bodies whole would send nothing here),
  // and stopped at the cap: the API got a cut-off start and never a complete request.
  const hit = hits.find((h) => h.path === "/big");
  assert.ok(hit && hit.bytes > 0, "the start of the body reached the API as it streamed");
  assert.ok(hit.bytes <= CAP, `${hit.bytes} bytes went upstream`);
  assert.equal(hit.headers["transfer-encoding"], "chunked");
  assert.ok(!lease.used.has("API_KEY"), "the API never answered it");
  assert.deepEqual(lease.violations, []);
});

test("plain http in a run that holds placeholders: a 3 MiB body streams through unchanged; a placeholder 2 MiB in is cut off", async () => {
  hits.length = 0;
  const secret = hold("API body,header:x-api-key");
  const size = 3 * 1024 * 1024;
  const { out, lease } = await skill(
    secret,
    `const plain = "http://${PLAIN}:${ports.plain}";
     const ok = await fetch(plain + "/clean", { method: "POST", body: ${bodyWith(size, [])} });
     result.clean = [ok.status, await ok.text()];
     try {
       const bad = await fetch(plain + "/leak", { method: "POST", body: ${bodyWith(size, [2 * 1024 * 1024])} });
       result.leak = [bad.status, await bad.text()];
     } catch (e) { result.leak = String(e); }`,
  );
  assert.deepEqual(out.clean, [200, `got ${size}`], JSON.stringify(out));
  const clean = hits.find((h) => h.path === "/clean");
  assert.equal(clean?.bytes, size);
  assert.equal(clean?.headers["content-length"], String(size), "nothing can go in over plain http, so it kept its length");
  if (Array.isArray(out.leak)) assert.equal(out.leak[0], 403, JSON.stringify(out));
  assert.deepEqual(lease.violations, [{ secret: "API_KEY", host: `${PLAIN}:${ports.plain}`, where: "plain http" }]);
  const leak = hits.find((h) => h.path === "/leak");
  if (leak) {
    assert.ok(leak.bytes <= 2 * 1024 * 1024, `${leak.bytes} bytes went out`);
    assert.ok(!leak.body.toString("latin1").includes(secret.placeholder.slice(0, 17)));
  }
  for (const h of hits) assert.ok(!h.body.toString("latin1").includes(VALUE), "no value over plain http");
});

test("a redirect from the bound host to another allowed host is judged again: the carried header is refused there", async () => {
  hits.length = 0;
  const secret = hold("API header:x-api-key");
  const { out, lease } = await skill(
    secret,
    `const r = await fetch(api + "/redirect", { headers: { "x-api-key": key } });
     result.status = r.status; result.url = r.url; await r.text();`,
  );
  const first = hits.find((h) => h.path === "/redirect");
  assert.equal(first?.headers["x-api-key"], VALUE, "the bound host got the value");
  // Deno carries x-api-key across origins (fetch drops only Authorization): the proxy refuses that hop.
  assert.equal(out.status, 403, JSON.stringify(out));
  assert.equal(out.url, `https://${OTHER}:${ports.other}/landed`);
  assert.deepEqual(lease.violations, [{ secret: "API_KEY", host: `${OTHER}:${ports.other}`, where: "header x-api-key" }]);
  assert.equal(hits.filter((h) => h.path === "/landed").length, 0, "the other host got nothing");
  for (const h of hits.filter((h) => h.host.startsWith(OTHER))) {
    assert.ok(!JSON.stringify(h.headers).includes(VALUE) && !JSON.stringify(h.headers).includes(secret.placeholder));
  }
});

/** Skill code: opens `url`, sends `messages` one by one, and records what came back and how it closed. */
const wsSkill = (url: string, messages: string[], options = "{}") => `
  const got: string[] = [];
  const ws = new WebSocket(${url}, ${options});
  const closed = new Promise<void>((resolve) => {
    ws.onclose = (e) => { result.closed = e.code; resolve(); };
    ws.onerror = () => { result.failed = true; };
  });
  ws.onmessage = (e) => { got.push(String(e.data)); if (got.length === ${messages.length}) ws.close(1000); };
  await new Promise<void>((resolve) => { ws.onopen = () => resolve(); ws.addEventListener("close", () => resolve()); });
  if (ws.readyState === WebSocket.OPEN) { result.protocol = ws.protocol; for (const m of [${messages.join(",")}]) ws.send(m); }
  await closed;
  result.got = got;`;

test("a WebSocket to a host bound with websocket: the value goes into the handshake and messages; answers come back scrubbed", async () => {
  wsSeen.urls.length = 0;
  wsSeen.messages.length = 0;
  wsSeen.authorization.length = 0;
  const secret = hold("API query:token,header:authorization:Bearer,websocket");
  const { out, lease } = await skill(
    secret,
    wsSkill(
      `\`wss://${API}:${ports.api}/ws?token=\${key}\``,
      ["`auth ${key}`", '"plain"'],
      "{ headers: { authorization: `Bearer ${key}` } }",
    ),
  );
  assert.deepEqual(wsSeen.urls, [`${API}:${ports.api}/ws?token=${VALUE}`], JSON.stringify(out));
  assert.deepEqual(wsSeen.authorization, [`Bearer ${VALUE}`], "a header Deno sends with the handshake gets the value too");
  assert.deepEqual(wsSeen.messages, [`auth ${VALUE}`, "plain"]);
  assert.deepEqual(out.got, [
    `echo auth ${secret.placeholder} raw=${secret.placeholder} b64=${secret.placeholder}`,
    `echo plain raw=${secret.placeholder} b64=${secret.placeholder}`,
  ]);
  assert.equal(out.closed, 1000);
  assert.deepEqual(lease.violations, []);
  assert.ok(lease.used.has("API_KEY"));
  assert.ok(!JSON.stringify(out).includes(VALUE) && !JSON.stringify(out).includes(Buffer.from(VALUE).toString("base64")));
});

test("a WebSocket to a host whose binding does not say websocket is refused at the upgrade and recorded", async () => {
  wsSeen.urls.length = 0;
  const secret = hold("API query:token");
  const { out, lease } = await skill(secret, wsSkill(`\`wss://${API}:${ports.api}/ws?token=\${key}\``, ['"x"']));
  assert.equal(out.failed, true, JSON.stringify(out));
  assert.deepEqual(wsSeen.urls, [], "no handshake reached the host");
  assert.deepEqual(lease.violations, [{ secret: "API_KEY", host: `${API}:${ports.api}`, where: "websocket" }]);
  assert.ok(!lease.used.has("API_KEY"));
});

test("a placeholder the binding does not allow in a WebSocket message closes the socket (1008) before it is sent", async () => {
  wsSeen.urls.length = 0;
  wsSeen.messages.length = 0;
  const ws = hold("API websocket", "WS_KEY", "ws-SECRET-value-51a7");
  const other = hold("API header:x-api-key", "API_KEY");
  const { out, lease } = await skill(ws, wsSkill(`\`wss://${API}:${ports.api}/ws\``, ['"hello"', '"k=" + Deno.env.get("API_KEY")']), [
    other,
  ]);
  assert.equal(out.closed, 1008, JSON.stringify(out));
  assert.deepEqual(wsSeen.messages, ["hello"], "the message with the placeholder never reached the host");
  assert.deepEqual(lease.violations, [{ secret: "API_KEY", host: `${API}:${ports.api}`, where: "websocket message" }]);
  assert.ok(!JSON.stringify(out).includes(VALUE));
});

test("a WebSocket's value goes only over a verified connection: an untrusted host certificate gets nothing", async () => {
  wsSeen.urls.length = 0;
  const secret = hold("API query:token,websocket");
  const url = `\`wss://${API}:${ports.api}/ws?token=\${key}\``;
  const { out, lease } = await skill(secret, wsSkill(url, ['"x"']), [], strictProxy);
  assert.equal(out.failed, true, JSON.stringify(out));
  assert.deepEqual(wsSeen.urls, [], "the handshake (with the value) never reached the host");
  assert.ok(!lease.used.has("API_KEY"));
  assert.deepEqual(lease.violations, []);
});
