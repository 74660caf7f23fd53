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
  /** Where in the request: "header x-foo", "path", "query key", "body", "plain http", "websocket". */
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

  // Body: only where the binding says "body"; then every occurrence is replaced.
  let body = req.body;
  if (body.length > 0) {
    let text = body.toString("latin1");
    let changed = false;
    for (const s of held) {
      if (!text.includes(s.placeholder)) continue;
      if (places(s, "body").length === 0) {
        refuse(s, "body");
        continue;
      }
      text = text.split(s.placeholder).join(Buffer.from(s.value, "utf8").toString("latin1"));
      changed = true;
      substituted.add(s.name);
    }
    if (changed) body = Buffer.from(text, "latin1");
  }

  if (violations.length > 0) return { ok: false, violations };
  return { ok: true, target, headers, body, substituted: [...substituted] };
}

/** Every placeholder of `held` found anywhere in a request that may carry none (plain http, an upgrade). */
export function placeholdersIn(req: Omit<OutgoingRequest, "hostPort">, held: readonly HeldSecret[]): HeldSecret[] {
  const text = `${req.target}\n${req.headers.map(([n, v]) => `${n}: ${v}`).join("\n")}\n${req.body.toString("latin1")}`;
  return held.filter((s) => text.includes(s.placeholder));
}
