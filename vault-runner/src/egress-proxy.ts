import { randomBytes } from "node:crypto";
import { listen } from "@oauth3/shared/listen";
import { lookup } from "node:dns/promises";
import * as http from "node:http";
import { connect, isIP, type Socket } from "node:net";
import { isPublicAddress } from "@oauth3/shared";
import type { Logger } from "pino";

export interface EgressProxyOptions {
  /** "host:port" pairs allowed to resolve to private addresses (operator setting, off by default). */
  allowPrivate: ReadonlySet<string>;
  /** Fixed name -> address answers that take precedence over DNS (operator/test setting). */
  staticHosts: ReadonlyMap<string, string>;
  logger: Logger;
}

export interface EgressLease {
  /** For HTTP_PROXY/HTTPS_PROXY in the skill's environment. */
  proxyUrl: string;
  release(): void;
}

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
  private readonly leases = new Map<string, { runId: string; allowed: ReadonlySet<string> }>();
  private port = 0;

  constructor(private readonly options: EgressProxyOptions) {
    this.server = http.createServer((req, res) => void this.forward(req, res));
    this.server.on("connect", (req, socket: Socket) => void this.tunnel(req, socket));
  }

  async start(): Promise<number> {
    await listen(this.server, { port: 0, host: "127.0.0.1" });
    this.port = (this.server.address() as { port: number }).port;
    return this.port;
  }

  async stop(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise((resolve) => this.server.close(resolve));
  }

  lease(runId: string, allowed: readonly string[]): EgressLease {
    const token = randomBytes(16).toString("hex");
    this.leases.set(token, { runId, allowed: new Set(allowed) });
    return {
      proxyUrl: `http://run:${token}@127.0.0.1:${this.port}`,
      release: () => this.leases.delete(token),
    };
  }

  private async tunnel(req: http.IncomingMessage, client: Socket): Promise<void> {
    client.on("error", () => client.destroy());
    const target = /^([a-z0-9.-]+):(\d{1,5})$/i.exec(req.url ?? "");
    const verdict = target
      ? await this.check(req, target[1]!.toLowerCase(), Number(target[2]))
      : { error: 400 as const, why: "bad CONNECT target" };
    if ("error" in verdict) {
      client.end(`HTTP/1.1 ${verdict.error} ${verdict.error === 407 ? "Proxy Authentication Required" : "Forbidden"}\r\n\r\n`);
      return;
    }
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
    const headers = { ...req.headers };
    delete headers["proxy-authorization"];
    delete headers["proxy-connection"];
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
    req.on("error", () => upstream.destroy());
    req.pipe(upstream);
  }

  private async check(
    req: http.IncomingMessage,
    host: string,
    port: number,
  ): Promise<{ address: string; port: number } | { error: 400 | 403 | 407; why: string }> {
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
    return { address: addresses[0]!, port };
  }

  private authenticate(header: string | undefined): { runId: string; allowed: ReadonlySet<string> } | undefined {
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
