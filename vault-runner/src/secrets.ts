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
  /** Per-run uids: a file other users can read would be readable by every skill. Refuse it. */
  refuseShared?: boolean;
}

/**
 * Loads SECRETS_FILE (dotenv syntax) and SECRETS_DIR (one file per secret, file name = secret name,
 * the Docker secrets convention; one trailing newline is dropped). A name defined twice, an invalid
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
  return { store: new SecretStore(values), warnings };
}

function sharedProblem(path: string): string | undefined {
  const mode = statSync(path).mode;
  if (!(mode & 0o004)) return undefined;
  return `${path} is readable by every user (mode ${(mode & 0o777).toString(8)}); chmod 600 it`;
}
