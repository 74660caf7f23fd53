import { randomBytes } from "node:crypto";
import { lookup } from "node:dns/promises";
import * as http from "node:http";
import * as https from "node:https";
import { connect, isIP, type Socket } from "node:net";
import { createSecureContext, rootCertificates, type SecureContext, TLSSocket } from "node:tls";
import { createBrotliDecompress, createGunzip, createInflate } from "node:zlib";
import { isPublicAddress } from "@oauth3/shared";
import { listen } from "@oauth3/shared/listen";
import type { Logger } from "pino";
import type { WebSocket } from "ws";
import type { EgressCa } from "./egress-ca.js";
import { WebSocketRelay } from "./egress-websocket.js";
import {
  BodyGate,
  HOP_HEADERS,
  type HeldSecret,
  headerPairs as pairs,
  judgeRequest,
  placeholdersIn,
  refusalText,
  type Violation,
} from "./placeholders.js";
import { StreamScrubber } from "./redact.js";

export interface EgressProxyOptions {
  /** "host:port" pairs allowed to resolve to private addresses (operator setting, off by default). */
  allowPrivate: ReadonlySet<string>;
  /** Fixed name -> address answers that take precedence over DNS (operator/test setting). */
  staticHosts: ReadonlyMap<string, string>;
  logger: Logger;
  /** The CA whose leaves the proxy presents when it intercepts (runs that hold placeholders). */
  ca?: EgressCa | undefined;
  /** Extra PEM roots the proxy trusts upstream besides Node's (RUNNER_EXTRA_CA_FILE). */
  extraUpstreamCa?: string | undefined;
  /**
   * The largest request body a run that holds placeholders may send (RUNNER_EGRESS_BODY_MAX_MB):
   * bodies are checked as they stream, so this bounds the upload, not the runner's memory.
   */
  maxBodyBytes?: number;
  /** The loopback address to listen on (default 127.0.0.1). */
  host?: string;
}

export interface EgressLease {
  /** For HTTP_PROXY/HTTPS_PROXY in the skill's environment. */
  proxyUrl: string;
  /** Placeholders sent where their binding does not allow (each refused with a 403). */
  readonly violations: readonly Violation[];
  /** Secrets whose value the proxy put into a request. */
  readonly used: ReadonlySet<string>;
  release(): void;
}

interface Lease {
  runId: string;
  allowed: ReadonlySet<string>;
  held: readonly HeldSecret[];
  violations: Violation[];
  used: Set<string>;
  released: boolean;
  /** Upstream connections of this run only (kept alive within the run, never shared). */
  agent?: https.Agent;
  scrubber?: () => StreamScrubber;
  /** Relayed WebSockets of this run (both sides), closed when the run ends. */
  webSockets: Set<WebSocket>;
}

interface Intercepted {
  lease: Lease;
  host: string;
  port: number;
  address: string;
}

/** Answers up to this size (with a Content-Length) are scrubbed whole and sent in one write. */
const SMALL_ANSWER = 256 * 1024;
/**
 * Request bodies up to this size are read whole and checked before anything is sent (a refused one
 * reaches no upstream at all, and keeps an exact Content-Length); larger ones stream through a
 * BodyGate, and a refusal then cuts the upload off.
 */
const WHOLE_BODY = 1024 * 1024;
/** The default cap on a request body in a run that holds placeholders. */
const DEFAULT_BODY_MAX = 32 * 1024 * 1024;

/**
 * The skills' only way out. Each run gets its own credentials, bound to the host:port pairs it was
 * granted. For every connection the proxy resolves the name itself, refuses loopback, private,
 * link-local, CGNAT, multicast and mapped forms (unless the operator named that host:port), and
 * connects to the exact address it checked, so a name cannot switch between check and use. Deno
 * sends fetch() here (CONNECT for https, absolute-form requests for http); the firewall rules
 * stop the skill uids from opening any other connection. Only host:port is logged, never a path
 * (URLs can carry secrets).
 */
export class EgressProxy {
  private readonly server: http.Server;
  private readonly leases = new Map<string, Lease>();
  /** Parses the requests inside intercepted TLS connections (never listens itself). */
  private readonly inner: http.Server;
  private readonly intercepted = new WeakMap<object, Intercepted>();
  /** Node's roots plus the operator's extra CA, parsed once (a context per connection would parse ~150 PEMs each time). */
  private readonly upstreamTls: SecureContext;
  private listenPort = 0;
  /** Relays the WebSockets a binding allows (egress-websocket.ts). */
  private readonly webSockets: WebSocketRelay;

  constructor(private readonly options: EgressProxyOptions) {
    this.server = http.createServer((req, res) => void this.forward(req, res));
    this.server.on("connect", (req, socket: Socket, head: Buffer) => void this.tunnel(req, socket, head));
    this.inner = http.createServer({ requestTimeout: 0 }, (req, res) => void this.interceptedRequest(req, res));
    // An upgrade (WebSocket) leaves a run that holds placeholders only toward a host whose binding
    // says "websocket", and then only through the proxy's own relay, which sees every message.
    this.inner.on("upgrade", (req: http.IncomingMessage, socket: Socket, head: Buffer) =>
      this.webSockets.upgrade(this.intercepted.get(req.socket), req, socket, head),
    );
    this.upstreamTls = createSecureContext({ ca: [...rootCertificates, ...(options.extraUpstreamCa ? [options.extraUpstreamCa] : [])] });
    this.webSockets = new WebSocketRelay(this.upstreamTls, (lease, v) => this.violation(lease as Lease, v));
  }

  /** The port the proxy listens on (after start). */
  get port(): number {
    return this.listenPort;
  }

  /** The address the proxy listens on. */
  get address(): string {
    return this.options.host ?? "127.0.0.1";
  }

  async start(): Promise<number> {
    await listen(this.server, { port: 0, host: this.address });
    this.listenPort = (this.server.address() as { port: number }).port;
    return this.listenPort;
  }

  async stop(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise((resolve) => this.server.close(resolve));
  }

  /** Whether this proxy can intercept (it has a CA): runs holding placeholders need it. */
  get intercepts(): boolean {
    return this.options.ca !== undefined;
  }

  /**
   * A run's credentials, bound to the host:port pairs it was granted. With `held` placeholders
   * every CONNECT of the run is intercepted (terminated with the runner's CA), so a placeholder is
   * seen wherever it goes and the value is put in only where its binding allows.
   */
  lease(runId: string, allowed: readonly string[], held: readonly HeldSecret[] = []): EgressLease {
    if (held.length > 0 && !this.options.ca) throw new Error("this egress proxy has no CA: it cannot hold placeholders");
    const token = randomBytes(16).toString("hex");
    const lease: Lease = {
      runId,
      allowed: new Set(allowed),
      held,
      violations: [],
      used: new Set(),
      released: false,
      webSockets: new Set(),
    };
    if (held.length > 0) {
      lease.agent = new https.Agent({ keepAlive: true, maxSockets: 16, secureContext: this.upstreamTls, noDelay: true });
      const pairs = held.map((h) => ({ value: h.value, replacement: h.placeholder }));
      lease.scrubber = () => new StreamScrubber(pairs);
    }
    this.leases.set(token, lease);
    return {
      proxyUrl: `http://run:${token}@${this.address}:${this.listenPort}`,
      violations: lease.violations,
      used: lease.used,
      release: () => {
        this.leases.delete(token);
        lease.released = true;
        lease.agent?.destroy();
        for (const ws of lease.webSockets) ws.terminate();
      },
    };
  }

  private async tunnel(req: http.IncomingMessage, client: Socket, head: Buffer): Promise<void> {
    client.on("error", () => client.destroy());
    const target = /^([a-z0-9.-]+):(\d{1,5})$/i.exec(req.url ?? "");
    const verdict = target
      ? await this.check(req, target[1]!.toLowerCase(), Number(target[2]))
      : { error: 400 as const, why: "bad CONNECT target" };
    if ("error" in verdict) {
      client.end(`HTTP/1.1 ${verdict.error} ${verdict.error === 407 ? "Proxy Authentication Required" : "Forbidden"}\r\n\r\n`);
      return;
    }
    if (verdict.lease.held.length > 0) {
      await this.intercept(client, head, {
        lease: verdict.lease,
        host: target![1]!.toLowerCase(),
        port: verdict.port,
        address: verdict.address,
      });
      return;
    }
    if (head.length > 0) client.unshift(head);
    const upstream = connect({ host: verdict.address, port: verdict.port });
    upstream.once("connect", () => {
      client.write("HTTP/1.1 200 Connection Established\r\n\r\n");
      upstream.pipe(client);
      client.pipe(upstream);
    });
    upstream.on("error", () => client.end("HTTP/1.1 502 Bad Gateway\r\n\r\n"));
    client.on("close", () => upstream.destroy());
  }

  private async forward(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    let url: URL;
    try {
      url = new URL(req.url ?? "");
      if (url.protocol !== "http:") throw new Error("not http");
    } catch {
      res.writeHead(400).end();
      return;
    }
    const verdict = await this.check(req, url.hostname.toLowerCase(), Number(url.port || 80));
    if ("error" in verdict) {
      res.writeHead(verdict.error).end();
      return;
    }
    if (verdict.lease.held.length > 0) {
      // A value never goes over plain http; a placeholder there is refused and reported.
      const { lease } = verdict;
      const hostPort = `${url.hostname}:${verdict.port}`;
      const found = placeholdersIn(
        { target: `${url.pathname}${url.search}`, headers: pairs(req.rawHeaders), body: Buffer.alloc(0) },
        lease.held,
      );
      const gate = new BodyGate(lease.held, hostPort, "plain http");
      const first = await this.bodyStart(req, res, gate);
      if (!first) return;
      const violations = [...found.map((s) => ({ secret: s.name, host: hostPort, where: "plain http" })), ...gate.violations];
      if (violations.length > 0) return this.refuse(res, lease, violations, first.ended);
      const upstream = this.sendPlain(req, res, url, verdict, first);
      if (!first.ended) this.streamRest(req, res, upstream, gate, lease, first.read);
      return;
    }
    this.sendPlain(req, res, url, verdict);
  }

  private sendPlain(
    req: http.IncomingMessage,
    res: http.ServerResponse,
    url: URL,
    verdict: { address: string; port: number },
    checked?: { out: Buffer; ended: boolean },
  ): http.ClientRequest {
    const headers = { ...req.headers };
    delete headers["proxy-authorization"];
    delete headers["proxy-connection"];
    if (checked?.ended) {
      delete headers["transfer-encoding"];
      if (checked.out.length > 0 || headers["content-length"] !== undefined) headers["content-length"] = String(checked.out.length);
    }
    // The grant covers the authority the proxy checked, so that is the Host the upstream sees: a
    // skill's own Host header (Deno allows it) could reach another virtual host on the same address.
    headers.host = url.host;
    const upstream = http.request(
      // agent: false: no upstream socket is pooled, so no connection is ever shared between runs.
      { host: verdict.address, port: verdict.port, method: req.method, path: `${url.pathname}${url.search}`, headers, agent: false },
      (up) => relayResponse(up, res),
    );
    upstream.on("error", () => {
      if (!res.headersSent) res.writeHead(502);
      res.end();
    });
    // A 101 answer would hand the skill a raw socket the proxy no longer sees: refused.
    upstream.on("upgrade", (_up, socket: Socket) => {
      socket.destroy();
      if (!res.headersSent) res.writeHead(502, { connection: "close" });
      res.end();
    });
    if (checked) {
      // The body was checked (a run that holds placeholders): what is left streams through streamRest.
      if (checked.ended) upstream.end(checked.out);
      else upstream.write(checked.out);
      return upstream;
    }
    req.on("error", () => upstream.destroy());
    req.pipe(upstream);
    return upstream;
  }

  private async check(
    req: http.IncomingMessage,
    host: string,
    port: number,
  ): Promise<{ address: string; port: number; lease: Lease } | { error: 400 | 403 | 407; why: string }> {
    const lease = this.authenticate(req.headers["proxy-authorization"]);
    const hostPort = `${host}:${port}`;
    const deny = (error: 403 | 407, why: string) => {
      this.options.logger.warn({ runId: lease?.runId, target: hostPort, why }, "egress refused");
      return { error, why };
    };
    if (!lease) return deny(407, "no or unknown run credentials");
    if (!lease.allowed.has(hostPort)) return deny(403, "host:port not granted to this run");
    if (isIP(host)) return deny(403, "IP literal");
    let addresses: string[];
    try {
      const fixed = this.options.staticHosts.get(host);
      addresses = fixed ? [fixed] : (await lookup(host, { all: true, verbatim: true })).map((a) => a.address);
    } catch {
      return deny(403, "name does not resolve");
    }
    const privateOk = this.options.allowPrivate.has(hostPort);
    if (addresses.length === 0 || (!privateOk && !addresses.every(isPublicAddress))) {
      return deny(403, "resolves to a non-public address");
    }
    return { address: addresses[0]!, port, lease };
  }

  /** Terminates the skill's TLS with a leaf of the runner's CA and hands the stream to the inner HTTP parser. */
  private async intercept(client: Socket, head: Buffer, at: Intercepted): Promise<void> {
    let secureContext: Awaited<ReturnType<EgressCa["contextFor"]>>;
    try {
      secureContext = await this.options.ca!.contextFor(at.host);
    } catch {
      client.end("HTTP/1.1 502 Bad Gateway\r\n\r\n");
      return;
    }
    client.write("HTTP/1.1 200 Connection Established\r\n\r\n");
    if (head.length > 0) client.unshift(head);
    client.setNoDelay(true);
    const tls = new TLSSocket(client, { isServer: true, secureContext, ALPNProtocols: ["http/1.1"] });
    tls.on("error", () => tls.destroy());
    client.on("close", () => tls.destroy());
    this.intercepted.set(tls, at);
    this.inner.emit("connection", tls);
  }

  /**
   * One request inside an intercepted connection: the target and headers are judged first, then the
   * body through a BodyGate (whole up to WHOLE_BODY, streamed beyond); sent with the values in only
   * where each binding allows, answered scrubbed.
   */
  private async interceptedRequest(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const at = this.intercepted.get(req.socket);
    if (!at || at.lease.released) {
      res.writeHead(407, { connection: "close" }).end();
      return;
    }
    const { lease } = at;
    const hostPort = `${at.host}:${at.port}`;
    if (!(req.url ?? "").startsWith("/")) {
      res.writeHead(400, { connection: "close" }).end();
      return;
    }
    const head = judgeRequest({ hostPort, target: req.url!, headers: pairs(req.rawHeaders), body: Buffer.alloc(0) }, lease.held);
    const gate = new BodyGate(lease.held, hostPort);
    const first = await this.bodyStart(req, res, gate);
    if (!first) return;
    const violations = [...(head.ok ? [] : head.violations), ...gate.violations];
    if (!head.ok || violations.length > 0) return this.refuse(res, lease, violations, first.ended);

    const headers: Record<string, string | string[]> = {};
    for (const [name, value] of head.headers) {
      const lower = name.toLowerCase();
      if (HOP_HEADERS.has(lower) || lower === "host" || lower === "content-length" || lower === "accept-encoding") continue;
      const prev = headers[lower];
      headers[lower] = prev === undefined ? value : [...(Array.isArray(prev) ? prev : [prev]), value];
    }
    headers.host = at.port === 443 ? at.host : hostPort;
    // The answer is scrubbed of the values before the skill sees it: ask for it unencoded.
    headers["accept-encoding"] = "identity";
    if (first.ended) {
      if (first.out.length > 0 || !["GET", "HEAD", "OPTIONS", "DELETE"].includes(req.method ?? "")) {
        headers["content-length"] = String(first.out.length);
      }
    } else if (!gate.substitutes && req.headers["content-length"] !== undefined && req.headers["transfer-encoding"] === undefined) {
      // Nothing can be put into this body, so it keeps its length.
      headers["content-length"] = req.headers["content-length"];
    } else {
      // A value may go in as the body streams: its length is known only at the end.
      headers["transfer-encoding"] = "chunked";
    }
    let answered = false;
    const countUsed = () => {
      // Counted once the bound host answered: the value reached it over a verified connection.
      if (!answered) return;
      for (const name of head.substituted) lease.used.add(name);
      for (const name of gate.substituted) lease.used.add(name);
    };
    const upstream = https.request(
      { host: at.address, port: at.port, servername: at.host, method: req.method, path: head.target, headers, agent: lease.agent! },
      (up) => {
        answered = true;
        countUsed();
        this.relayScrubbed(up, res, lease);
      },
    );
    upstream.on("error", () => {
      if (!res.headersSent) res.writeHead(502, { "content-type": "text/plain" });
      res.end();
    });
    upstream.on("upgrade", (_up, socket: Socket) => {
      socket.destroy();
      if (!res.headersSent) res.writeHead(502, { connection: "close" });
      res.end();
    });
    upstream.on("finish", countUsed);
    if (first.ended) {
      upstream.end(first.out);
      return;
    }
    upstream.write(first.out);
    this.streamRest(req, res, upstream, gate, lease, first.read);
  }

  /**
   * The start of a request body, through `gate`: whole if it ends within WHOLE_BODY (and the cap),
   * else the first WHOLE_BODY bytes with the request paused. Undefined when the request was answered
   * already (413 over the cap, or the client's error).
   */
  private async bodyStart(
    req: http.IncomingMessage,
    res: http.ServerResponse,
    gate: BodyGate,
  ): Promise<{ out: Buffer; ended: boolean; read: number } | undefined> {
    const cap = this.options.maxBodyBytes ?? DEFAULT_BODY_MAX;
    const start = await readStart(req, Math.min(WHOLE_BODY, cap + 1));
    if (start === "error") {
      res.destroy();
      return undefined;
    }
    if (start.body.length > cap) {
      this.tooLarge(res, cap);
      return undefined;
    }
    const out = Buffer.concat([gate.push(start.body), start.ended ? gate.end() : Buffer.alloc(0)]);
    return { out, ended: start.ended, read: start.body.length };
  }

  /**
   * The rest of a large body: each chunk through the gate to `upstream`, with backpressure. Past the
   * cap, or at a misplaced placeholder, the upload is cut off (the upstream never gets the chunk that
   * held it) and the skill gets a 413 or 403.
   */
  private streamRest(
    req: http.IncomingMessage,
    res: http.ServerResponse,
    upstream: http.ClientRequest,
    gate: BodyGate,
    lease: Lease,
    read: number,
  ): void {
    const cap = this.options.maxBodyBytes ?? DEFAULT_BODY_MAX;
    let total = read;
    let stopped = false;
    const stop = (answer: () => void) => {
      stopped = true;
      upstream.removeAllListeners("error");
      upstream.on("error", () => {});
      upstream.destroy();
      if (res.headersSent) res.destroy();
      else answer();
    };
    req.on("data", (chunk: Buffer) => {
      total += chunk.length;
      if (stopped) {
        // Read on (and drop) so the skill can read its answer, but never past the cap.
        if (total > cap) req.socket.destroy();
        return;
      }
      if (total > cap) return stop(() => this.tooLarge(res, cap));
      const out = gate.push(chunk);
      if (gate.violations.length > 0) return stop(() => this.refuse(res, lease, gate.violations, false));
      if (out.length > 0 && !upstream.write(out)) req.pause();
    });
    upstream.on("drain", () => req.resume());
    req.on("end", () => {
      if (stopped) return;
      const out = gate.end();
      if (gate.violations.length > 0) return stop(() => this.refuse(res, lease, gate.violations, true));
      upstream.end(out);
    });
    req.on("error", () => stop(() => res.destroy()));
    req.resume();
  }

  /** A 403 naming every misplaced placeholder, each recorded. */
  private refuse(res: http.ServerResponse, lease: Lease, violations: readonly Violation[], bodyRead: boolean): void {
    for (const v of violations) this.violation(lease, v);
    // A body left unread ends the connection after the answer (it would be parsed as the next request).
    const headers = bodyRead ? { "content-type": "text/plain" } : { "content-type": "text/plain", connection: "close" };
    res.writeHead(403, headers).end(`oauth3-proxy: refused: ${refusalText(violations)}\n`);
  }

  private tooLarge(res: http.ServerResponse, cap: number): void {
    res
      .writeHead(413, { "content-type": "text/plain", connection: "close" })
      .end(`oauth3-proxy: request body over the runner's cap (${Math.floor(cap / (1024 * 1024))} MiB, RUNNER_EGRESS_BODY_MAX_MB)\n`);
  }

  /** The upstream's answer, decoded if it came encoded anyway, with every form of every held value replaced by its placeholder. */
  private relayScrubbed(up: http.IncomingMessage, res: http.ServerResponse, lease: Lease): void {
    const status = up.statusCode ?? 0;
    const scrub = lease.scrubber!();
    const headers: Record<string, string | string[]> = {};
    for (const [name, value] of pairs(up.rawHeaders)) {
      const lower = name.toLowerCase();
      if (HOP_HEADERS.has(lower) || lower === "content-length" || lower === "content-encoding") continue;
      const clean = scrub.text(value);
      const prev = headers[lower];
      headers[lower] = prev === undefined ? clean : [...(Array.isArray(prev) ? prev : [prev]), clean];
    }
    const encoding = String(up.headers["content-encoding"] ?? "identity")
      .toLowerCase()
      .trim();
    const decoder =
      encoding === "identity" || encoding === ""
        ? undefined
        : encoding === "gzip" || encoding === "x-gzip"
          ? createGunzip()
          : encoding === "deflate"
            ? createInflate()
            : encoding === "br"
              ? createBrotliDecompress()
              : "unknown";
    if (!Number.isInteger(status) || status < 200 || status > 599 || decoder === "unknown") {
      up.destroy();
      if (!res.headersSent) res.writeHead(502, { connection: "close" });
      res.end();
      return;
    }
    const start = (length?: number): boolean => {
      try {
        res.writeHead(status, length === undefined ? headers : { ...headers, "content-length": String(length) });
        return true;
      } catch {
        up.destroy();
        if (!res.headersSent) res.writeHead(502, { connection: "close" });
        res.end();
        return false;
      }
    };
    up.on("error", () => res.destroy());
    const declared = Number(up.headers["content-length"]);
    if (!decoder && Number.isInteger(declared) && declared >= 0 && declared <= SMALL_ANSWER) {
      // A small answer of known length: scrubbed whole and sent in one write with its (new) length.
      const chunks: Buffer[] = [];
      up.on("data", (chunk: Buffer) => chunks.push(scrub.push(chunk)));
      up.on("end", () => {
        chunks.push(scrub.end());
        const body = Buffer.concat(chunks);
        if (start(body.length)) res.end(body);
      });
      res.on("close", () => up.destroy());
      return;
    }
    if (!start()) return;
    const source = decoder ? up.pipe(decoder) : up;
    source.on("data", (chunk: Buffer) => {
      const out = scrub.push(chunk);
      if (out.length > 0) res.write(out);
    });
    source.on("end", () => res.end(scrub.end()));
    source.on("error", () => res.destroy());
    res.on("close", () => up.destroy());
  }

  private violation(lease: Lease, v: Violation): void {
    lease.violations.push(v);
    this.options.logger.warn({ runId: lease.runId, secret: v.secret, target: v.host, where: v.where }, "placeholder refused");
  }

  private authenticate(header: string | undefined): Lease | undefined {
    const match = /^Basic ([A-Za-z0-9+/=]+)$/.exec(header ?? "");
    if (!match) return undefined;
    const [, token] = Buffer.from(match[1]!, "base64").toString("utf8").split(":");
    return token ? this.leases.get(token) : undefined;
  }
}

/**
 * The one path an upstream's answer takes back to the skill. Whatever the upstream sends (a status
 * Node's writeHead refuses, such as 099, an informational status as a final one, a header it will
 * not write) ends as a 502 for this request only: nothing an upstream sends can throw in the
 * runner's event loop.
 */
function relayResponse(up: http.IncomingMessage, res: http.ServerResponse): void {
  const status = up.statusCode ?? 0;
  if (!Number.isInteger(status) || status < 200 || status > 599) {
    up.destroy();
    if (!res.headersSent) res.writeHead(502, { connection: "close" });
    res.end();
    return;
  }
  try {
    res.writeHead(status, up.headers);
  } catch {
    up.destroy();
    if (!res.headersSent) res.writeHead(502, { connection: "close" });
    res.end();
    return;
  }
  up.on("error", () => res.destroy());
  up.pipe(res);
}

/** Up to `limit` bytes of a request body: all of it if it ended within (ended), else what was read, with the request paused. */
function readStart(req: http.IncomingMessage, limit: number): Promise<{ body: Buffer; ended: boolean } | "error"> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const onData = (chunk: Buffer) => {
      chunks.push(chunk);
      size += chunk.length;
      if (size >= limit) {
        req.pause();
        done({ body: Buffer.concat(chunks), ended: false });
      }
    };
    const onEnd = () => done({ body: Buffer.concat(chunks), ended: true });
    const onError = () => done("error");
    // The request may fail after this returns (the client goes away): never an unhandled 'error'.
    req.on("error", () => {});
    const done = (result: { body: Buffer; ended: boolean } | "error") => {
      req.off("data", onData);
      req.off("end", onEnd);
      req.off("error", onError);
      resolve(result);
    };
    req.on("data", onData);
    req.on("end", onEnd);
    req.on("error", onError);
  });
}
