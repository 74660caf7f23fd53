/**
 * The egress proxy against hostile upstreams, with real sockets: a raw TCP upstream answers what no
 * well-behaved server would. Each case must end as an answer to that request only (a 502), with the
 * runner process still alive; the Host an upstream sees is the authority the grant checked; and no
 * upstream connection is reused, so one run's connection can never carry another run's request.
 */
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { createServer, type Server, type Socket } from "node:net";
import { request } from "node:http";
import pino from "pino";
import { EgressProxy } from "../src/egress-proxy.ts";

let proxy: EgressProxy;
let upstream: Server;
let upstreamPort = 0;
const connections: Socket[] = [];
const requests: string[] = [];
/** What the raw upstream answers next, per path. */
const answers = new Map<string, string>();

before(async () => {
  upstream = createServer((socket) => {
    connections.push(socket);
    let buffered = "";
    socket.on("data", (chunk) => {
      buffered += chunk.toString("latin1");
      for (let end = buffered.indexOf("\r\n\r\n"); end >= 0; end = buffered.indexOf("\r\n\r\n")) {
        const head = buffered.slice(0, end);
        buffered = buffered.slice(end + 4);
        requests.push(head);
        const path = head.split(" ")[1] ?? "";
        const host = /\r\nhost: ([^\r\n]*)/i.exec(head)?.[1] ?? "";
        socket.write(answers.get(path) ?? `HTTP/1.1 200 OK\r\ncontent-length: ${host.length}\r\nconnection: keep-alive\r\n\r\n${host}`);
      }
    });
    socket.on("error", () => undefined);
  });
  await new Promise<void>((r) => upstream.listen(0, "127.0.0.1", r));
  upstreamPort = (upstream.address() as { port: number }).port;
  proxy = new EgressProxy({
    allowPrivate: new Set([`api.test.example:${upstreamPort}`]),
    staticHosts: new Map([["api.test.example", "127.0.0.1"]]),
    logger: pino({ level: "silent" }),
  });
  await proxy.start();
});
after(async () => {
  await proxy.stop();
  for (const s of connections) s.destroy();
  upstream.close();
});

/** A plain-http request through the proxy, as Deno sends it (absolute form, Basic credentials). */
function viaProxy(proxyUrl: string, path: string, headers: Record<string, string> = {}): Promise<{ status: number; body: string }> {
  const u = new URL(proxyUrl);
  return new Promise((resolve, reject) => {
    const req = request(
      {
        host: u.hostname,
        port: Number(u.port),
        method: "GET",
        path: `http://api.test.example:${upstreamPort}${path}`,
        agent: false,
        headers: { "proxy-authorization": `Basic ${Buffer.from(`${u.username}:${u.password}`).toString("base64")}`, ...headers },
      },
      (res) => {
        let body = "";
        res.on("data", (c: Buffer) => (body += c.toString()));
        res.on("end", () => resolve({ status: res.statusCode ?? 0, body }));
        res.on("error", reject);
      },
    );
    req.on("error", reject);
    req.setTimeout(5000, () => req.destroy(new Error(`no answer to ${path} within 5 s`)));
    req.end();
  });
}

test("an upstream's invalid or informational final status is a 502 for that request; the process lives on", async () => {
  const lease = proxy.lease("run-a", [`api.test.example:${upstreamPort}`]);
  // (An exception thrown in the proxy's event callbacks would be uncaught here too: node:test fails
  // the file for it, as the runner process would die of it.)
  try {
    for (const [path, answer] of [
      ["/099", "HTTP/1.1 099 Weird\r\ncontent-length: 0\r\n\r\n"],
      ["/000", "HTTP/1.1 000 Zero\r\ncontent-length: 0\r\n\r\n"],
      ["/1000", "HTTP/1.1 1000 Big\r\ncontent-length: 0\r\n\r\n"],
      ["/999", "HTTP/1.1 999 Max\r\ncontent-length: 0\r\n\r\n"],
      ["/101", "HTTP/1.1 101 Switching Protocols\r\nupgrade: x\r\nconnection: upgrade\r\n\r\n"],
    ] as const) {
      answers.set(path, answer);
      const r = await viaProxy(lease.proxyUrl, path);
      assert.equal(r.status, 502, `${path}: ${r.body}`);
    }
    const ok = await viaProxy(lease.proxyUrl, "/fine");
    assert.equal(ok.status, 200, "the proxy still serves the next request");
  } finally {
    lease.release();
  }
});

test("the upstream sees the checked authority as Host, whatever Host the skill set", async () => {
  const lease = proxy.lease("run-b", [`api.test.example:${upstreamPort}`]);
  const r = await viaProxy(lease.proxyUrl, "/host", { host: "admin.internal.example" });
  assert.equal(r.status, 200);
  assert.equal(r.body, `api.test.example:${upstreamPort}`);
  assert.ok(!requests.some((h) => /admin\.internal\.example/.test(h)), "the skill's Host never reached the upstream");
  lease.release();
});

test("no upstream connection is pooled across requests (or runs), even when the upstream keeps it alive", async () => {
  const a = proxy.lease("run-c", [`api.test.example:${upstreamPort}`]);
  const b = proxy.lease("run-d", [`api.test.example:${upstreamPort}`]);
  const before = connections.length;
  await viaProxy(a.proxyUrl, "/one");
  await viaProxy(b.proxyUrl, "/two");
  await viaProxy(a.proxyUrl, "/three");
  assert.equal(connections.length - before, 3, "each request opened its own upstream connection");
  a.release();
  b.release();
});
