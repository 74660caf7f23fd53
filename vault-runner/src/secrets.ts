import { readFileSync, readdirSync, statSync } from "node:fs";
import { join } from "node:path";
import { parse } from "dotenv";
import { checkSecretName, PolicyError } from "@oauth3/shared";

/**
 * The runner's secrets, in memory only. Values leave this object in exactly one way: into the
 * environment of a skill process that was granted them (`valuesFor`). Nothing here logs a value.
 */
export class SecretStore {
  private readonly values: ReadonlyMap<string, string>;

  constructor(values: Map<string, string>) {
    this.values = values;
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

export interface SecretSources {
  secretsFile?: string | undefined;
  secretsDir?: string | undefined;
  /** SECRETS_JSON: `{"NAME": "value" | {"value": "..."}}`, or base64 of that JSON. */
  secretsJson?: string | undefined;
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
    const parsed = parse(readFileSync(sources.secretsFile));
    for (const [name, value] of Object.entries(parsed)) add(name, value, sources.secretsFile);
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
  if (sources.secretsJson) {
    for (const [name, value] of parseSecretsJson(sources.secretsJson)) add(name, value, "SECRETS_JSON");
  }
  return { store: new SecretStore(values), warnings };
}

/**
 * SECRETS_JSON, the form an environment variable can carry (Phala Cloud delivers its encrypted env
 * as variables; compose hands this one to the runner only): a JSON object from secret name to its
 * value, either a string or `{"value": "..."}`; the object form is where each secret's bindings will
 * go. Base64 of the same JSON is accepted too (no quoting trouble in .env files). Errors name the
 * secret and the problem, never a value or the text around it.
 */
export function parseSecretsJson(text: string): Array<[string, string]> {
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
    throw new Error("SECRETS_JSON must be a JSON object: {\"NAME\": \"value\", ...}");
  }
  return Object.entries(doc as Record<string, unknown>).map(([name, entry]) => {
    if (typeof entry === "string") return [name, entry];
    if (typeof entry === "object" && entry !== null && !Array.isArray(entry)) {
      const keys = Object.keys(entry);
      const extra = keys.filter((k) => k !== "value");
      if (extra.length > 0) {
        throw new Error(`SECRETS_JSON: secret ${name} has fields this runner does not know (${extra.join(", ")}); only "value" is read`);
      }
      const value = (entry as { value?: unknown }).value;
      if (typeof value === "string") return [name, value];
    }
    throw new Error(`SECRETS_JSON: secret ${name} must be a string or {"value": "<string>"}`);
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
