import { PolicyError } from "./policy-error.js";

/**
 * Environment names Deno (or the libraries under it) reads itself. A secret or arg with such a name
 * could steer the runtime: reroute traffic (HTTP_PROXY), ship logs elsewhere (OTEL_*), change the VM
 * (DENO_V8_FLAGS), load code (LD_PRELOAD). See ../shared/reference/deno-sandbox.md.
 */
const RESERVED_PREFIXES = [
  "DENO_", "NODE_", "NPM_", "OTEL_", "LD_", "RUST_", "SSL", "JSR_", "ICU_", "SQLITE_", "GLIBC_",
  "MALLOC_", "X_DENO_", "LC_",
  // Our own namespace, kept free for variables the runner may set in future.
  "OAUTH3_",
] as const;
const RESERVED_NAMES = new Set([
  "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY", "HOME", "PATH", "TMPDIR", "TZ", "LANG",
  "TERM", "TMUX", "COLORTERM", "FORCE_COLOR", "NO_COLOR", "CI", "LANGUAGE", "SHELL", "USER",
  "PWD", "TEMP", "TMP",
]);

const SECRET_NAME = /^[A-Z][A-Z0-9_]{0,63}$/;
/** Args keep upstream's lower-case names (`Deno.env.get("prompt")`), hence both cases. */
const ARG_NAME = /^[A-Za-z][A-Za-z0-9_]{0,63}$/;

/** Reserved regardless of letter case: Deno honours `http_proxy` as well as `HTTP_PROXY`. */
export function isReservedEnvName(name: string): boolean {
  const upper = name.toUpperCase();
  return RESERVED_NAMES.has(upper) || RESERVED_PREFIXES.some((p) => upper.startsWith(p));
}

export function checkSecretName(name: unknown): string {
  if (typeof name !== "string" || !SECRET_NAME.test(name)) {
    throw new PolicyError(
      "invalid_secret_name",
      `secret name ${describe(name)} must match ^[A-Z][A-Z0-9_]{0,63}$`,
    );
  }
  if (isReservedEnvName(name)) {
    throw new PolicyError("reserved_name", `secret name ${name} is reserved for the runtime`);
  }
  return name;
}

export function checkArgName(name: string): string {
  if (!ARG_NAME.test(name)) {
    throw new PolicyError(
      "invalid_arg_name",
      `arg name ${describe(name)} must match ^[A-Za-z][A-Za-z0-9_]{0,63}$`,
    );
  }
  if (isReservedEnvName(name)) {
    throw new PolicyError("reserved_name", `arg name ${name} is reserved for the runtime`);
  }
  return name;
}

/** A short, printable rendering of untrusted input for error messages. */
export function describe(value: unknown): string {
  if (typeof value !== "string") return typeof value;
  const clipped = value.length > 40 ? `${value.slice(0, 40)}…` : value;
  return JSON.stringify(clipped);
}
