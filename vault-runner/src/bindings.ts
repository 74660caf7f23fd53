import { readFileSync } from "node:fs";
import { bindingsDigest, checkSecretName, normalizeHost, PolicyError } from "@oauth3/shared";

/**
 * Where each secret may be used: the runner's own policy, never a field of a request. A secret in
 * "placeholder" mode never enters a skill: the skill gets a per-run placeholder and the egress
 * proxy puts the value in only toward the bound hosts, only in the places the binding names. A
 * secret in "env" mode is handed to the skill as it is (for signing schemes such as AWS SigV4,
 * where the value must be in the skill's hands); every surface flags it.
 *
 * The one grammar, in the bindings file (RUNNER_BINDINGS_FILE, default ./bindings.conf), in
 * RUNNER_BINDINGS (the same lines, separated by newlines or ";") and as a SECRETS_JSON entry's
 * "bind" string (the line without its name):
 *
 *   NAME  host:port[,host:port...]  place[,place...]    # placeholder mode
 *   NAME  env                                           # the raw value in the skill
 *
 * where a place is `header:<name>` (the header's value is the placeholder exactly),
 * `header:<name>:<scheme>` (the value is "<scheme> <placeholder>", e.g. Bearer), `query:<name>`
 * (a query parameter's whole value), `body` (anywhere in a request body, which the proxy checks as
 * it streams, up to its body cap) or `websocket` (the host may be opened as a WebSocket, and the
 * placeholder may be in the skill's messages to it; without it every upgrade is refused).
 */
export type Place =
  | { kind: "header"; name: string; scheme?: string }
  | { kind: "query"; name: string }
  | { kind: "body" }
  | { kind: "websocket" };

export type Binding = { name: string; mode: "env" } | { name: string; mode: "placeholder"; hosts: string[]; places: Place[] };

const PLACE_HEADER = /^header:([a-z0-9!#$%&'*+.^_`|~-]{1,64})(?::([A-Za-z0-9._~+/-]{1,32}))?$/i;
const PLACE_QUERY = /^query:([A-Za-z0-9._~-]{1,64})$/;

/** Headers the proxy owns or that would change the request's framing or target: never a place. */
const NEVER_HEADERS = new Set([
  "host",
  "content-length",
  "transfer-encoding",
  "connection",
  "upgrade",
  "te",
  "trailer",
  "proxy-authorization",
]);

/** Parses one binding (the text after the name). Errors name the secret and the bad part. */
export function parseBinding(name: string, text: string, origin: string): Binding {
  const fail = (why: string) => new Error(`binding for ${name} in ${origin}: ${why}`);
  try {
    checkSecretName(name);
  } catch (err) {
    throw fail(err instanceof PolicyError ? err.message : String(err));
  }
  const parts = text.trim().split(/\s+/).filter(Boolean);
  if (parts.length === 1 && parts[0] === "env") return { name, mode: "env" };
  if (parts.length !== 2) throw fail('must be "<host:port>[,...] <place>[,...]" or "env"');
  const hosts = parts[0]!.split(",").map((h) => {
    if (!/:\d{1,5}$/.test(h)) throw fail(`host ${h} needs its port (e.g. ${h}:443)`);
    try {
      return normalizeHost(h);
    } catch (err) {
      throw fail(err instanceof PolicyError ? err.message : String(err));
    }
  });
  const places = parts[1]!.split(",").map((p): Place => {
    if (p === "body") return { kind: "body" };
    if (p === "websocket") return { kind: "websocket" };
    const header = PLACE_HEADER.exec(p);
    if (header) {
      const headerName = header[1]!.toLowerCase();
      if (NEVER_HEADERS.has(headerName)) throw fail(`header ${headerName} cannot carry a secret (the proxy owns it)`);
      return { kind: "header", name: headerName, ...(header[2] && { scheme: header[2] }) };
    }
    const query = PLACE_QUERY.exec(p);
    if (query) return { kind: "query", name: query[1]! };
    throw fail(`place ${JSON.stringify(p)} must be header:<name>, header:<name>:<scheme>, query:<name>, body or websocket`);
  });
  return { name, mode: "placeholder", hosts: [...new Set(hosts)], places };
}

/** Parses bindings lines (`NAME binding`, `#` comments, blank lines). */
export function parseBindingLines(text: string, origin: string): Binding[] {
  const out: Binding[] = [];
  const lines = text.replace(/^\uFEFF/, "").split(/\r?\n|;/);
  lines.forEach((raw, i) => {
    const line = raw.replace(/(^|\s)#.*$/, "").trim();
    if (line === "") return;
    const m = /^([A-Za-z0-9_.-]+)\s+(.+)$/.exec(line);
    if (!m) throw new Error(`${origin} line ${i + 1}: not "NAME <host:port> <place>" or "NAME env"`);
    out.push(parseBinding(m[1]!, m[2]!, `${origin} line ${i + 1}`));
  });
  return out;
}

export interface BindingSources {
  bindingsFile?: string | undefined;
  bindingsEnv?: string | undefined;
  /** Bindings from SECRETS_JSON entries' "bind" strings. */
  fromJson?: readonly Binding[];
}

/** Every binding the runner was given, at most one per secret. */
export function loadBindings(sources: BindingSources): Map<string, Binding> {
  const all: Array<[Binding, string]> = [];
  if (sources.bindingsFile) {
    for (const b of parseBindingLines(readFileSync(sources.bindingsFile, "utf8"), sources.bindingsFile))
      all.push([b, sources.bindingsFile]);
  }
  if (sources.bindingsEnv) for (const b of parseBindingLines(sources.bindingsEnv, "RUNNER_BINDINGS")) all.push([b, "RUNNER_BINDINGS"]);
  for (const b of sources.fromJson ?? []) all.push([b, "SECRETS_JSON"]);
  const out = new Map<string, Binding>();
  for (const [b, origin] of all) {
    if (out.has(b.name)) throw new Error(`secret ${b.name} is bound more than once (again in ${origin})`);
    out.set(b.name, b);
  }
  return out;
}

/** What a binding line for an unbound secret could say: the known APIs' exact line, else a template. */
const KNOWN: Record<string, string> = {
  ANTHROPIC_API_KEY: "api.anthropic.com:443  header:x-api-key",
  OPENAI_API_KEY: "api.openai.com:443  header:authorization:Bearer",
  GITHUB_TOKEN: "api.github.com:443  header:authorization:Bearer",
  GH_TOKEN: "api.github.com:443  header:authorization:Bearer",
};

/**
 * Checks that every secret has a binding; a secret without one does not load: the error shows the
 * line to add. Returns the names bound but not loaded (a typo, or a secret not set yet) for a warning.
 */
export function checkBindings(secretNames: readonly string[], bindings: ReadonlyMap<string, Binding>, bindingsFile: string): string[] {
  const unbound = secretNames.filter((n) => !bindings.has(n));
  if (unbound.length > 0) {
    const lines = unbound.map((n) => `  ${n}  ${KNOWN[n] ?? "<host>:443  header:<header-name>"}`).join("\n");
    throw new Error(
      `secret${unbound.length > 1 ? "s" : ""} ${unbound.join(", ")} ${unbound.length > 1 ? "have" : "has"} no binding, so the runner ` +
        `will not load ${unbound.length > 1 ? "them" : "it"}. Say where each may be used: add to ${bindingsFile} ` +
        `(RUNNER_BINDINGS_FILE, or the same lines in RUNNER_BINDINGS):\n${lines}\n` +
        `(the skill then sees a placeholder; the runner's egress proxy puts the value in only toward that host, in that header). ` +
        `For a secret the skill itself must hold (e.g. for AWS SigV4 signing), write "<NAME>  env" instead: ` +
        "the skill then sees the real value, and every card and receipt says so.",
    );
  }
  return [...bindings.keys()].filter((n) => !secretNames.includes(n));
}

/** A binding as one line of text, as cards, /health and receipts show it. */
export function describeBinding(b: Binding): string {
  return b.mode === "env" ? "env (the skill sees the real value)" : bindingText(b);
}

/** A binding in the grammar parseBinding reads (without the name). */
export function bindingText(b: Binding): string {
  if (b.mode === "env") return "env";
  const places = b.places.map((p) =>
    p.kind === "body" || p.kind === "websocket"
      ? p.kind
      : p.kind === "query"
        ? `query:${p.name}`
        : `header:${p.name}${p.scheme ? `:${p.scheme}` : ""}`,
  );
  return `${b.hosts.join(",")} ${places.join(",")}`;
}

/** The digest of the bindings of `names` as the runner holds them (shared/bindings-digest.ts). */
export function runBindingsDigest(bindings: ReadonlyMap<string, Binding>, names: readonly string[]): string {
  return bindingsDigest(
    names.map((n) => {
      const b = bindings.get(n);
      return b ? bindingSummary(b) : { name: n, mode: "unbound", hosts: [], places: [] };
    }),
  );
}

/** A binding as the wire and receipts carry it: mode, hosts and places as text. */
export function bindingSummary(b: Binding): { name: string; mode: string; hosts: string[]; places: string[] } {
  if (b.mode === "env") return { name: b.name, mode: "env", hosts: [], places: [] };
  return { name: b.name, mode: "placeholder", hosts: b.hosts, places: bindingText(b).split(" ")[1]!.split(",") };
}
