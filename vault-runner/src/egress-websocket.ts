import type * as http from "node:http";
import type { Socket } from "node:net";
import { connect as tlsConnect, type SecureContext } from "node:tls";
import { type RawData, WebSocket, WebSocketServer } from "ws";
import {
  BodyGate,
  HOP_HEADERS,
  type HeldSecret,
  headerPairs,
  judgeRequest,
  placeholdersIn,
  refusalText,
  type Violation,
} from "./placeholders.js";
import type { StreamScrubber } from "./redact.js";

/** The largest WebSocket message relayed either way (each is checked or scrubbed whole). */
const WS_MAX_MESSAGE = 4 * 1024 * 1024;
/** Above this many bytes queued toward one side, the other side's reading pauses. */
const WS_HIGH_WATER = 8 * 1024 * 1024;

/** What the relay needs of a run's egress lease. */
export interface RelayLease {
  readonly held: readonly HeldSecret[];
  readonly used: Set<string>;
  readonly released: boolean;
  /** Relayed WebSockets of this run (both sides), closed when the run ends. */
  readonly webSockets: Set<WebSocket>;
  readonly scrubber?: () => StreamScrubber;
}

/** The intercepted connection an upgrade came on: its run, and the host:port and address the proxy checked. */
export interface RelayTarget {
  lease: RelayLease;
  host: string;
  port: number;
  address: string;
}

/**
 * WebSockets out of a run that holds placeholders: only toward a host whose binding says
 * `websocket`, and only through this relay, which sees every message either way.
 */
export class WebSocketRelay {
  /** Completes the skill's side of a relayed WebSocket (never listens itself). */
  private readonly server: WebSocketServer;
  /** The subprotocol the upstream chose, per upgrade request, for the skill's handshake. */
  private readonly chosenProtocol = new WeakMap<http.IncomingMessage, string>();

  constructor(
    private readonly upstreamTls: SecureContext,
    private readonly record: (lease: RelayLease, v: Violation) => void,
  ) {
    this.server = new WebSocketServer({
      noServer: true,
      perMessageDeflate: false,
      maxPayload: WS_MAX_MESSAGE,
      handleProtocols: (_offered, req) => this.chosenProtocol.get(req) ?? false,
    });
  }

  /**
   * A WebSocket upgrade inside an intercepted connection. Allowed only toward a host that a held
   * secret's binding marks `websocket`; the handshake is judged like any request (the value goes in
   * only where the binding names), the proxy opens its own verified WebSocket to the host and relays
   * message by message: the skill's messages through a BodyGate (a placeholder the binding does not
   * put there closes both sides, 1008, and is recorded), the host's messages scrubbed of every form
   * of every value. No extension (compression) is negotiated on either side.
   */
  upgrade(at: RelayTarget | undefined, req: http.IncomingMessage, socket: Socket, head: Buffer): void {
    socket.on("error", () => socket.destroy());
    const refuse = (status: string, text: string) =>
      socket.end(`HTTP/1.1 ${status}\r\ncontent-type: text/plain\r\nconnection: close\r\n\r\noauth3-proxy: ${text}\n`);
    if (!at || at.lease.released) return void refuse("407 Proxy Authentication Required", "this run has ended");
    const { lease } = at;
    const hostPort = `${at.host}:${at.port}`;
    const headers = headerPairs(req.rawHeaders);
    const target = req.url ?? "";
    const allows = lease.held.some((s) => s.binding.hosts.includes(hostPort) && s.binding.places.some((p) => p.kind === "websocket"));
    if (!allows) {
      for (const s of placeholdersIn({ target, headers, body: Buffer.alloc(0) }, lease.held)) {
        this.record(lease, { secret: s.name, host: hostPort, where: "websocket" });
      }
      return void refuse("403 Forbidden", "upgrades (WebSocket) are refused unless a held secret's binding for this host says websocket");
    }
    if (!target.startsWith("/")) return void refuse("400 Bad Request", "bad target");
    const verdict = judgeRequest({ hostPort, target, headers, body: Buffer.alloc(0) }, lease.held);
    if (!verdict.ok) {
      for (const v of verdict.violations) this.record(lease, v);
      return void refuse("403 Forbidden", `refused: ${refusalText(verdict.violations)}`);
    }
    const upstreamHeaders: Record<string, string> = {};
    let protocols: string[] = [];
    for (const [name, value] of verdict.headers) {
      const lower = name.toLowerCase();
      if (lower === "sec-websocket-protocol") {
        protocols = [
          ...protocols,
          ...value
            .split(",")
            .map((p) => p.trim())
            .filter(Boolean),
        ];
        continue;
      }
      // The proxy's own handshake and framing: never the skill's.
      if (HOP_HEADERS.has(lower) || lower === "host" || lower.startsWith("sec-websocket-") || lower === "content-length") continue;
      upstreamHeaders[name] = name in upstreamHeaders ? `${upstreamHeaders[name]}, ${value}` : value;
    }
    const upstream = new WebSocket(`wss://${hostPort}${verdict.target}`, protocols, {
      headers: upstreamHeaders,
      perMessageDeflate: false,
      maxPayload: WS_MAX_MESSAGE,
      followRedirects: false,
      handshakeTimeout: 30_000,
      // To the address the proxy checked, verified against the upstream roots under the host's name.
      createConnection: ((options: object) =>
        tlsConnect({
          ...options,
          // ws hands http.request's options over; their `path` is the URL's, not a socket path.
          path: undefined,
          host: at.address,
          port: at.port,
          servername: at.host,
          secureContext: this.upstreamTls,
        })) as never,
    });
    let opened = false;
    upstream.on("unexpected-response", (_r, answer) => {
      const status = answer.statusCode ?? 0;
      answer.destroy();
      upstream.terminate();
      refuse(
        status >= 200 && status <= 599 && status !== 101 ? `${status} Refused` : "502 Bad Gateway",
        `the host refused the WebSocket (${status})`,
      );
    });
    upstream.on("error", () => {
      if (!opened) refuse("502 Bad Gateway", "could not open the WebSocket to the host");
    });
    socket.on("close", () => {
      if (!opened) upstream.terminate();
    });
    upstream.on("open", () => {
      opened = true;
      // Counted once the bound host accepted the handshake over a verified connection.
      for (const name of verdict.substituted) lease.used.add(name);
      if (lease.released || socket.destroyed) return void upstream.terminate();
      this.chosenProtocol.set(req, upstream.protocol);
      this.server.handleUpgrade(req, socket, head, (client) => this.relay(client, upstream, lease, hostPort));
    });
  }

  private relay(client: WebSocket, upstream: WebSocket, lease: RelayLease, hostPort: string): void {
    lease.webSockets.add(client);
    lease.webSockets.add(upstream);
    const closeCode = (code: number) => (code >= 3000 && code <= 4999) || [1000, 1001, 1003, 1007, 1008, 1009, 1011].includes(code);
    const data = (raw: RawData) => (Buffer.isBuffer(raw) ? raw : Array.isArray(raw) ? Buffer.concat(raw) : Buffer.from(raw));
    const flow = (from: WebSocket, to: WebSocket, chunk: Buffer, binary: boolean) => {
      to.send(chunk, { binary }, () => {
        if (to.bufferedAmount < WS_HIGH_WATER / 2 && from.isPaused) from.resume();
      });
      if (to.bufferedAmount > WS_HIGH_WATER) from.pause();
    };
    client.on("message", (raw, binary) => {
      const gate = new BodyGate(lease.held, hostPort, "websocket");
      const out = Buffer.concat([gate.push(data(raw)), gate.end()]);
      if (gate.violations.length > 0) {
        for (const v of gate.violations) this.record(lease, v);
        upstream.terminate();
        client.close(1008, "oauth3-proxy: a placeholder in a message its binding does not allow");
        return;
      }
      for (const name of gate.substituted) lease.used.add(name);
      flow(client, upstream, out, binary);
    });
    upstream.on("message", (raw, binary) => {
      const scrub = lease.scrubber!();
      flow(upstream, client, Buffer.concat([scrub.push(data(raw)), scrub.end()]), binary);
    });
    client.on("close", (code, reason) => {
      lease.webSockets.delete(client);
      if (upstream.readyState === WebSocket.OPEN) upstream.close(closeCode(code) ? code : 1000, reason.subarray(0, 0));
      else upstream.terminate();
    });
    upstream.on("close", (code, reason) => {
      lease.webSockets.delete(upstream);
      const text = lease.scrubber!().text(reason.toString("utf8")).slice(0, 120);
      if (client.readyState === WebSocket.OPEN) client.close(closeCode(code) ? code : 1011, Buffer.byteLength(text) <= 123 ? text : "");
      else client.terminate();
    });
    client.on("error", () => upstream.terminate());
    upstream.on("error", () => client.terminate());
  }
}
