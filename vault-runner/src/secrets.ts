import { readFileSync, readdirSync, statSync } from "node:fs";
import { join } from "node:path";
import { parse } from "dotenv";
import { checkSecretName, PolicyError } from "@oauth3/shared";
import { type Binding, checkBindings, loadBindings, parseBinding } from "./bindings.js";

/**
 * The runner's secrets, in memory only. Values leave this object in exactly one way: into the
 * environment of a skill process that was granted them (`valuesFor`). Nothing here logs a value.
 */
export class SecretStore {
  private readonly values: ReadonlyMap<string, string>;
  private readonly bindingMap: ReadonlyMap<string, Binding>;

  /** Every secret needs its binding (bindings.ts): where it may be used is part of the secret. */
  /** Names bound but not loaded (for a warning). */
  readonly unusedBindings: string[];

  constructor(values: Map<string, string>, bindings: ReadonlyMap<string, Binding>, bindingsFile = "the bindings file") {
    this.unusedBindings = checkBindings([...values.keys()], bindings, bindingsFile);
    this.values = values;
    this.bindingMap = bindings;
  }

  /** Where `name` may be used (every loaded secret has one). */
  binding(name: string): Binding | undefined {
    return this.bindingMap.get(name);
  }

  get bindings(): ReadonlyMap<string, Binding> {
    return this.bindingMap;
  }

  names(): string[] {
    return [...this.values.keys()].sort();
  }

  has(name: string): boolean {
    return this.values.has(name);
  }

  get size(): number {
    return this.values.size;
  }

  /** For the executor only. Throws on an unknown name: callers check first. */
  valuesFor(names: readonly string[]): Map<string, string> {
    const out = new Map<string, string>();
    for (const name of names) {
      const value = this.values.get(name);
      if (value === undefined) throw new Error(`unknown secret ${name}`);
      out.set(name, value);
    }
    return out;
  }
}

/**
 * The largest secret value, in UTF-8 bytes. A secret reaches a skill as one environment string,
 * and Linux refuses any single one over 128 KiB (MAX_ARG_STRLEN) at exec; 64 KiB leaves room for
 * the name and holds every credential a skill plausibly needs (API tokens, PEM keys, service-account
 * JSON, kubeconfigs). Redaction is tested up to this size (vault-runner/test/redact.test.ts).
 */
export const MAX_SECRET_BYTES = 64 * 1024;

export interface SecretSources {
  secretsFile?: string | undefined;
  secretsDir?: string | undefined;
  /** SECRETS_JSON: `{"NAME": "value" | {"value": "..."}}`, or base64 of that JSON. */
  secretsJson?: string | undefined;
  /** RUNNER_BINDINGS_FILE: one binding per line (bindings.ts). */
  bindingsFile?: string | undefined;
  /** RUNNER_BINDINGS: the same lines, separated by newlines or ";". */
  bindingsEnv?: string | undefined;
  /** Per-run uids: a file other users can read would be readable by every skill. Refuse it. */
  refuseShared?: boolean;
}

/**
 * Loads SECRETS_FILE (dotenv syntax), SECRETS_DIR (one file per secret, file name = secret name,
 * the Docker secrets convention; one trailing newline is dropped) and SECRETS_JSON (see
 * parseSecretsJson), together. A name defined twice, an invalid
 * or reserved name, or an empty value stops start-up with a message naming the secret, never its
 * value. Returns warnings (e.g. a world-readable secrets file) for the caller to log.
 */
export function loadSecrets(sources: SecretSources): { store: SecretStore; warnings: string[] } {
  const values = new Map<string, string>();
  const warnings: string[] = [];
  const add = (name: string, value: string, origin: string) => {
    try {
      checkSecretName(name);
    } catch (err) {
      const why = err instanceof PolicyError ? err.message : String(err);
      throw new Error(`secret in ${origin}: ${why}`);
    }
    if (value.length === 0) throw new Error(`secret ${name} in ${origin} is empty`);
    if (value.includes("\0")) throw new Error(`secret ${name} in ${origin} contains a NUL byte`);
    const bytes = Buffer.byteLength(value, "utf8");
    if (bytes > MAX_SECRET_BYTES) {
      throw new Error(`secret ${name} in ${origin} is ${bytes} bytes; the most a secret may hold is ${MAX_SECRET_BYTES} bytes (64 KiB)`);
    }
    if (values.has(name)) throw new Error(`secret ${name} is defined more than once (${origin})`);
    values.set(name, value);
  };

  const checkShared = (path: string) => {
    const problem = sharedProblem(path);
    if (problem && sources.refuseShared) {
      throw new Error(`${problem}: skills run as other users and could read it`);
    }
    if (problem) warnings.push(problem);
  };
  if (sources.secretsFile) {
    checkShared(sources.secretsFile);
    for (const [name, value] of parseSecretsFile(readFileSync(sources.secretsFile, "utf8"), sources.secretsFile)) {
      add(name, value, sources.secretsFile);
    }
  }
  if (sources.secretsDir) {
    for (const entry of readdirSync(sources.secretsDir, { withFileTypes: true })) {
      if (entry.name.startsWith(".")) continue; // Kubernetes ..data links and the like
      const path = join(sources.secretsDir, entry.name);
      if (!statSync(path).isFile()) continue;
      checkShared(path);
      add(entry.name, readFileSync(path, "utf8").replace(/\r?\n$/, ""), path);
    }
  }
  const fromJson: Binding[] = [];
  if (sources.secretsJson) {
    for (const { name, value, bind } of parseSecretsJson(sources.secretsJson)) {
      add(name, value, "SECRETS_JSON");
      if (bind !== undefined) fromJson.push(parseBinding(name, bind, "SECRETS_JSON"));
    }
  }
  const bindings = loadBindings({ bindingsFile: sources.bindingsFile, bindingsEnv: sources.bindingsEnv, fromJson });
  const store = new SecretStore(values, bindings, sources.bindingsFile ?? "./bindings.conf");
  if (store.unusedBindings.length > 0) warnings.push(`bindings for secrets that are not loaded: ${store.unusedBindings.join(", ")}`);
  return { store, warnings };
}

/**
 * SECRETS_FILE: dotenv syntax, read strictly. dotenv.parse alone keeps the last of a repeated name,
 * cuts an unquoted value at its first `#`, and skips any line it does not understand, so each
 * entry is delimited here and only its value text is handed to dotenv (quotes, escapes, multi-line).
 * Refused, naming the line and the secret, never the value: a line that is neither blank, a
 * `#` comment nor `NAME=value`; an unquoted value holding `#` (quote it); a quote never closed;
 * anything but a comment after a closing quote. A repeated name is refused by the caller.
 */
export function parseSecretsFile(text: string, origin: string): Array<[string, string]> {
  const lines = text.replace(/^\uFEFF/, "").split(/\r?\n/);
  const out: Array<[string, string]> = [];
  const seen = new Set<string>();
  for (let i = 0; i < lines.length; i++) {
    const lineNo = i + 1;
    const line = lines[i]!;
    if (/^\s*(#.*)?$/.test(line)) continue;
    const m = /^\s*(?:export\s+)?([A-Za-z0-9_.-]+)\s*=(.*)$/s.exec(line);
    if (!m) throw new Error(`${origin} line ${lineNo}: not NAME=value (the line is not shown: it may hold a secret)`);
    const name = m[1]!;
    if (seen.has(name)) throw new Error(`secret ${name} is defined more than once in ${origin} (line ${lineNo})`);
    seen.add(name);
    let rest = m[2]!.replace(/^\s+/, "");
    const quote = rest[0];
    if (quote === '"' || quote === "'" || quote === "`") {
      // Find the closing quote, on this line or a later one.
      let body = rest.slice(1);
      let close = closingQuote(body, quote);
      while (close === -1 && i + 1 < lines.length) {
        body += `\n${lines[++i]}`;
        close = closingQuote(body, quote);
      }
      if (close === -1) throw new Error(`secret ${name} in ${origin} (line ${lineNo}): the quote is never closed`);
      const after = body.slice(close + 1);
      if (!/^\s*(#.*)?$/.test(after)) {
        throw new Error(`secret ${name} in ${origin} (line ${lineNo}): text after the closing quote (only a # comment may follow)`);
      }
      rest = `${quote}${body.slice(0, close + 1)}`;
    } else if (rest.includes("#")) {
      throw new Error(
        `secret ${name} in ${origin} (line ${lineNo}): an unquoted value holds "#", which dotenv reads as a comment; quote the value`,
      );
    }
    const parsed = parse(`V=${rest}`);
    out.push([name, parsed.V ?? ""]);
  }
  return out;
}

function closingQuote(body: string, quote: string): number {
  for (let j = 0; j < body.length; j++) {
    if (body[j] === "\\" && body[j + 1] === quote) {
      j++;
      continue;
    }
    if (body[j] === quote) return j;
  }
  return -1;
}

/**
 * SECRETS_JSON, the form an environment variable can carry (Phala Cloud delivers its encrypted env
 * as variables; compose hands this one to the runner only): a JSON object from secret name to its
 * value, either a string or `{"value": "...", "bind": "<binding>"}` (bindings.ts's grammar, without
 * the name). Base64 of the same JSON is accepted too (no quoting trouble in .env files). Errors name the
 * secret and the problem, never a value or the text around it.
 */
export function parseSecretsJson(text: string): Array<{ name: string; value: string; bind?: string }> {
  const trimmed = text.trim();
  let doc: unknown;
  try {
    const json = trimmed.startsWith("{") ? trimmed : decodeBase64Strict(trimmed);
    doc = JSON.parse(json);
  } catch {
    // JSON.parse's message quotes the text: never pass it on.
    throw new Error("SECRETS_JSON is neither a JSON object nor base64 of one (the text is not shown: it holds secrets)");
  }
  if (typeof doc !== "object" || doc === null || Array.isArray(doc)) {
    throw new Error('SECRETS_JSON must be a JSON object: {"NAME": "value", ...}');
  }
  return Object.entries(doc as Record<string, unknown>).map(([name, entry]) => {
    if (typeof entry === "string") return { name, value: entry };
    if (typeof entry === "object" && entry !== null && !Array.isArray(entry)) {
      const keys = Object.keys(entry);
      const extra = keys.filter((k) => k !== "value" && k !== "bind");
      if (extra.length > 0) {
        throw new Error(
          `SECRETS_JSON: secret ${name} has fields this runner does not know (${extra.join(", ")}); only "value" and "bind" are read`,
        );
      }
      const { value, bind } = entry as { value?: unknown; bind?: unknown };
      if (bind !== undefined && typeof bind !== "string") throw new Error(`SECRETS_JSON: secret ${name}'s "bind" must be a string`);
      if (typeof value === "string") return { name, value, ...(bind !== undefined && { bind }) };
    }
    throw new Error(`SECRETS_JSON: secret ${name} must be a string or {"value": "<string>", "bind": "<binding>"}`);
  });
}

function decodeBase64Strict(text: string): string {
  const compact = text.replace(/\s+/g, "");
  if (!/^[A-Za-z0-9+/_-]+={0,2}$/.test(compact)) throw new Error("not base64");
  return Buffer.from(compact, "base64").toString("utf8");
}

function sharedProblem(path: string): string | undefined {
  const mode = statSync(path).mode;
  if (!(mode & 0o004)) return undefined;
  return `${path} is readable by every user (mode ${(mode & 0o777).toString(8)}); chmod 600 it`;
}
