import { LIMITS } from "./limits.js";
import { checkArgName, checkSecretName, describe } from "./names.js";
import { normalizeHost } from "./hosts.js";
import { PolicyError } from "./policy-error.js";
import type { SkillHeader } from "./skill-header.js";

/** What a skill run is allowed: exactly what the approver sees and exactly what the runner grants. */
export interface RunSpec {
  secretNames: string[];
  /** "host:port", sorted. */
  network: string[];
  args: Array<{ name: string; value: string }>;
  timeoutSeconds: number;
}

export interface RunSpecInput {
  secrets: readonly unknown[];
  network?: readonly unknown[] | undefined;
  args: ReadonlyArray<{ name: string; value: string }>;
  timeoutSeconds?: number | undefined;
}

/**
 * Resolves and validates a run. Both processes call this: the gateway to answer with a clear 4xx,
 * the runner because it trusts nothing the gateway says. When the code's header declares secrets,
 * hosts or a timeout, the request must agree with it exactly: a mismatch is an error, never a silent
 * choice between the two (upstream showed one list and injected the other).
 */
export function resolveRunSpec(input: RunSpecInput, header: SkillHeader, maxTimeoutSeconds: number): RunSpec {
  const secretNames = uniqueSorted(input.secrets.map(checkSecretName), "duplicate_secret", "secret");
  if (secretNames.length > LIMITS.maxSecrets) {
    throw new PolicyError("too_many_secrets", `at most ${LIMITS.maxSecrets} secrets per skill`);
  }
  if (header.secrets !== undefined) {
    const declared = uniqueSorted(header.secrets.map(checkSecretName), "duplicate_secret", "secret");
    requireSameSet("secrets", declared, secretNames);
  }

  const requested = input.network?.map(normalizeHost);
  const declared = header.network?.map(normalizeHost);
  if (requested && declared) {
    requireSameSet("network", uniqueSorted(declared, "duplicate_host", "host"), uniqueSorted(requested, "duplicate_host", "host"));
  }
  const network = uniqueSorted(requested ?? declared ?? [], "duplicate_host", "host");
  if (network.length > LIMITS.maxHosts) {
    throw new PolicyError("too_many_hosts", `at most ${LIMITS.maxHosts} network hosts per skill`);
  }

  const args = checkArgs(input.args, secretNames);
  const timeoutSeconds = resolveTimeout(input.timeoutSeconds, header.timeoutSeconds, maxTimeoutSeconds);
  return { secretNames, network, args, timeoutSeconds };
}

function checkArgs(args: ReadonlyArray<{ name: string; value: string }>, secretNames: readonly string[]): RunSpec["args"] {
  if (args.length > LIMITS.maxArgs) {
    throw new PolicyError("too_many_args", `at most ${LIMITS.maxArgs} args per skill`);
  }
  const taken = new Set(secretNames.map((n) => n.toUpperCase()));
  let total = 0;
  const out: RunSpec["args"] = [];
  for (const { name, value } of args) {
    checkArgName(name);
    if (taken.has(name.toUpperCase())) {
      throw new PolicyError("arg_shadows_name", `arg ${name} collides with a secret or another arg (names are compared ignoring case)`);
    }
    taken.add(name.toUpperCase());
    if (typeof value !== "string" || value.includes("\0")) {
      throw new PolicyError("invalid_arg_value", `arg ${name} must be a string without NUL bytes`);
    }
    const size = Buffer.byteLength(value, "utf8");
    if (size > LIMITS.maxArgValueBytes) {
      throw new PolicyError("arg_too_large", `arg ${name} exceeds ${LIMITS.maxArgValueBytes} bytes`);
    }
    total += size;
    out.push({ name, value });
  }
  if (total > LIMITS.maxArgsTotalBytes) {
    throw new PolicyError("arg_too_large", `args together exceed ${LIMITS.maxArgsTotalBytes} bytes`);
  }
  return out.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
}

function resolveTimeout(requested: number | undefined, declared: string | undefined, max: number): number {
  let fromHeader: number | undefined;
  if (declared !== undefined) {
    if (!/^\d{1,6}$/.test(declared)) {
      throw new PolicyError("invalid_timeout", `@timeout ${describe(declared)} must be whole seconds`);
    }
    fromHeader = Number(declared);
  }
  if (requested !== undefined && fromHeader !== undefined && requested !== fromHeader) {
    throw new PolicyError("header_mismatch", `timeout ${requested}s in the request differs from @timeout ${fromHeader}s in the code`);
  }
  const timeout = requested ?? fromHeader ?? Math.min(LIMITS.defaultTimeoutSeconds, max);
  if (!Number.isInteger(timeout) || timeout < 1 || timeout > max) {
    throw new PolicyError("invalid_timeout", `timeout must be 1..${max} seconds, got ${timeout}`);
  }
  return timeout;
}

function uniqueSorted(items: string[], code: string, what: string): string[] {
  const sorted = [...items].sort();
  for (let i = 1; i < sorted.length; i++) {
    if (sorted[i] === sorted[i - 1]) {
      throw new PolicyError(code, `${what} ${sorted[i]} is listed twice`);
    }
  }
  return sorted;
}

function requireSameSet(what: string, declared: string[], requested: string[]): void {
  const same = declared.length === requested.length && declared.every((item, i) => item === requested[i]);
  if (!same) {
    throw new PolicyError(
      "header_mismatch",
      `${what} in the request [${requested.join(", ")}] differ from the code's header ` +
        `[${declared.join(", ")}]; the approver must see exactly what is granted`,
    );
  }
}
