import { randomBytes } from "node:crypto";
import type { Binding, Place } from "./bindings.js";

/** A secret a run holds as a placeholder: the skill has `placeholder`, only the proxy has `value`. */
export interface HeldSecret {
  name: string;
  value: string;
  placeholder: string;
  binding: Extract<Binding, { mode: "placeholder" }>;
}

/** A placeholder somewhere its binding does not name: refused (403) and reported. */
export interface Violation {
  secret: string;
  /** host:port the skill sent it to. */
  host: string;
  /**
   * Where in the request: "header x-foo", "path", "query key", "body", "plain http", "websocket"
   * (an upgrade to a host whose binding does not allow it), "websocket message".
   */
  where: string;
}

/**
 * A fresh placeholder: 32 random bytes, so it cannot be guessed, and the same length whatever the
 * value, so it says nothing about it. Only URL- and header-safe characters, so a skill can put it
 * wherever the value went before.
 */
export function newPlaceholder(): string {
  return `oauth3ph_${randomBytes(32).toString("base64url")}`;
}

export interface OutgoingRequest {
  /** The host:port the proxy checked (and connects to). */
  hostPort: string;
  /** The origin-form target: path and query, as the skill sent them. */
  target: string;
  /** Header name/value pairs as sent (rawHeaders order). */
  headers: Array<[string, string]>;
  body: Buffer;
}

export type Judgement =
  | { ok: true; target: string; headers: Array<[string, string]>; body: Buffer; substituted: string[] }
  | { ok: false; violations: Violation[] };

/**
 * Finds every placeholder of `held` in a request and either puts the value in (its binding names
 * this host and this place, in the exact form the binding says) or refuses the whole request with
 * every misplaced placeholder named. Nothing is sent anywhere unless the whole request is clean.
 */
export function judgeRequest(req: OutgoingRequest, held: readonly HeldSecret[]): Judgement {
  const violations: Violation[] = [];
  const substituted = new Set<string>();
  const refuse = (s: HeldSecret, where: string) => violations.push({ secret: s.name, host: req.hostPort, where });
  const bound = (s: HeldSecret) => s.binding.hosts.includes(req.hostPort);
  const places = (s: HeldSecret, kind: Place["kind"]) => (bound(s) ? s.binding.places.filter((p) => p.kind === kind) : []);

  // Path and query.
  const q = req.target.indexOf("?");
  const path = q === -1 ? req.target : req.target.slice(0, q);
  for (const s of held) if (path.includes(s.placeholder)) refuse(s, "path");
  let target = path;
  if (q !== -1) {
    const params = req.target
      .slice(q + 1)
      .split("&")
      .map((pair) => {
        const eq = pair.indexOf("=");
        const rawName = eq === -1 ? pair : pair.slice(0, eq);
        const rawValue = eq === -1 ? "" : pair.slice(eq + 1);
        let name: string;
        try {
          name = decodeURIComponent(rawName.replace(/\+/g, " "));
        } catch {
          name = rawName;
        }
        for (const s of held) {
          if (rawName.includes(s.placeholder)) refuse(s, "query parameter name");
          if (!rawValue.includes(s.placeholder)) continue;
          if (rawValue === s.placeholder && places(s, "query").some((p) => p.kind === "query" && p.name === name)) {
            substituted.add(s.name);
            return `${rawName}=${encodeURIComponent(s.value)}`;
          }
          refuse(s, `query ${name}`);
        }
        return pair;
      });
    target = `${path}?${params.join("&")}`;
  }

  // Headers: the value is the placeholder exactly, or "<scheme> <placeholder>" where the binding has a scheme.
  const headers = req.headers.map(([name, value]): [string, string] => {
    const lower = name.toLowerCase();
    for (const s of held) {
      if (lower.includes(s.placeholder.toLowerCase())) refuse(s, "header name");
      if (!value.includes(s.placeholder)) continue;
      const place = places(s, "header").find((p) => {
        if (p.kind !== "header" || p.name !== lower) return false;
        if (!p.scheme) return value === s.placeholder;
        return value.toLowerCase() === `${p.scheme.toLowerCase()} ${s.placeholder.toLowerCase()}` && value.endsWith(s.placeholder);
      });
      if (!place) {
        refuse(s, `header ${lower}`);
        continue;
      }
      substituted.add(s.name);
      return [name, value.slice(0, value.length - s.placeholder.length) + s.value];
    }
    return [name, value];
  });

  // Body: only where the binding says "body"; then every occurrence is replaced (the one BodyGate).
  let body = req.body;
  if (body.length > 0) {
    const gate = new BodyGate(held, req.hostPort);
    body = Buffer.concat([gate.push(body), gate.end()]);
    violations.push(...gate.violations);
    for (const name of gate.substituted) substituted.add(name);
  }

  if (violations.length > 0) return { ok: false, violations };
  return { ok: true, target, headers, body, substituted: [...substituted] };
}

/**
 * A request body checked as it streams: each chunk comes out with the placeholders of secrets bound
 * to this host's body replaced by their values, and any other placeholder stops it (a violation;
 * the caller must send nothing more). A placeholder cut across chunks is found: the gate holds back
 * the last (placeholder length - 1) bytes until the next chunk or the end. Works on bytes (latin1),
 * so a body that is not UTF-8 passes unchanged.
 */
export class BodyGate {
  readonly violations: Violation[] = [];
  readonly substituted = new Set<string>();
  private carry = "";
  private readonly keep: number;
  private readonly replace: ReadonlyMap<string, string>;

  /**
   * `where` is the place: "body" (a request body), "websocket" (a message the skill sends on a
   * WebSocket), each replaced where a binding names that place for this host, or "plain http", where
   * nothing may be put in. It names the place in a violation.
   */
  constructor(
    private readonly held: readonly HeldSecret[],
    private readonly hostPort: string,
    private readonly where: "body" | "websocket" | "plain http" = "body",
  ) {
    this.keep = Math.max(0, ...held.map((s) => s.placeholder.length - 1));
    const replace = new Map<string, string>();
    if (where !== "plain http") {
      for (const s of held) {
        if (s.binding.hosts.includes(hostPort) && s.binding.places.some((p) => p.kind === where)) {
          replace.set(s.placeholder, Buffer.from(s.value, "utf8").toString("latin1"));
        }
      }
    }
    this.replace = replace;
  }

  /** Whether any held secret may be put into this body (then its length can change). */
  get substitutes(): boolean {
    return this.replace.size > 0;
  }

  /** The chunk's bytes that are safe to send now (an empty buffer once a violation was found). */
  push(chunk: Buffer): Buffer {
    return this.pass(this.carry + chunk.toString("latin1"), false);
  }

  /** What was held back, at the end of the body. */
  end(): Buffer {
    return this.pass(this.carry, true);
  }

  private pass(text: string, last: boolean): Buffer {
    if (this.violations.length > 0) return Buffer.alloc(0);
    let cut = last ? text.length : Math.max(0, text.length - this.keep);
    const found: Array<{ at: number; s: HeldSecret }> = [];
    for (const s of this.held) {
      for (let at = text.indexOf(s.placeholder); at !== -1; at = text.indexOf(s.placeholder, at + s.placeholder.length)) {
        found.push({ at, s });
        cut = Math.max(cut, at + s.placeholder.length);
      }
    }
    for (const { s } of found) {
      if (this.replace.has(s.placeholder)) continue;
      if (!this.violations.some((v) => v.secret === s.name)) {
        this.violations.push({ secret: s.name, host: this.hostPort, where: this.where === "websocket" ? "websocket message" : this.where });
      }
    }
    if (this.violations.length > 0) {
      this.carry = "";
      return Buffer.alloc(0);
    }
    this.carry = text.slice(cut);
    let out = text.slice(0, cut);
    for (const [placeholder, value] of this.replace) {
      if (!out.includes(placeholder)) continue;
      out = out.split(placeholder).join(value);
      const s = this.held.find((h) => h.placeholder === placeholder)!;
      this.substituted.add(s.name);
    }
    return Buffer.from(out, "latin1");
  }
}

/** Every placeholder of `held` found anywhere in a request that may carry none (plain http, an upgrade). */
export function placeholdersIn(req: Omit<OutgoingRequest, "hostPort">, held: readonly HeldSecret[]): HeldSecret[] {
  const text = `${req.target}\n${req.headers.map(([n, v]) => `${n}: ${v}`).join("\n")}\n${req.body.toString("latin1")}`;
  return held.filter((s) => text.includes(s.placeholder));
}

/** What the skill is told of a refusal: each secret, where it went and the place (never a value). */
export function refusalText(violations: readonly Violation[]): string {
  return violations.map((v) => `${v.secret} may not be sent to ${v.host} in ${v.where}`).join("; ");
}

/** rawHeaders as name/value pairs. */
export function headerPairs(raw: readonly string[]): Array<[string, string]> {
  const out: Array<[string, string]> = [];
  for (let i = 0; i + 1 < raw.length; i += 2) out.push([raw[i]!, raw[i + 1]!]);
  return out;
}

/** Hop-by-hop and proxy headers: never forwarded as the skill sent them. */
export const HOP_HEADERS: ReadonlySet<string> = new Set([
  "connection",
  "keep-alive",
  "proxy-authorization",
  "proxy-connection",
  "te",
  "trailer",
  "transfer-encoding",
  "upgrade",
]);
