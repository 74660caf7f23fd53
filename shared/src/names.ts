import { PolicyError } from "./policy-error.js";

/**
 * Environment names Deno (or the libraries under it) reads itself. A secret or arg with such a name
 * could steer the runtime: reroute traffic (HTTP_PROXY), ship logs elsewhere (OTEL_*), change the VM
 * (DENO_V8_FLAGS), load code (LD_PRELOAD).
 */
const RESERVED_PREFIXES = [
  "DENO_",
  "NODE_",
  "NPM_",
  "OTEL_",
  "LD_",
  "RUST_",
  "SSL",
  "JSR_",
  "ICU_",
  "SQLITE_",
  "GLIBC_",
  "MALLOC_",
  "X_DENO_",
  "LC_",
  // Our own namespace, kept free for variables the runner may set in future.
  "OAUTH3_",
] as const;
const RESERVED_NAMES = new Set([
  "HTTP_PROXY",
  "HTTPS_PROXY",
  "ALL_PROXY",
  "NO_PROXY",
  "HOME",
  "PATH",
  "TMPDIR",
  "TZ",
  "LANG",
  "TERM",
  "TMUX",
  "COLORTERM",
  "FORCE_COLOR",
  "NO_COLOR",
  "CI",
  "LANGUAGE",
  "SHELL",
  "USER",
  "PWD",
  "TEMP",
  "TMP",
  // glibc: the resolver (a granted name's lookup sent to another zone), locale and iconv loading.
  "LOCALDOMAIN",
  "RES_OPTIONS",
  "HOSTALIASES",
  "LOCPATH",
  "NLSPATH",
  "GCONV_PATH",
  "TZDIR",
]);
/** Prefixes glibc's resolver reads besides the names above. */
const RESERVED_SECRET_PREFIXES = ["RESOLV_"] as const;

const SECRET_NAME = /^[A-Z][A-Z0-9_]{0,63}$/;
/** Args keep upstream's lower-case names (`Deno.env.get("prompt")`), hence both cases. */
const ARG_NAME = /^[A-Za-z][A-Za-z0-9_]{0,63}$/;
/**
 * The rule that keeps args apart from every variable a runtime or libc reads: an arg name holds a
 * lower-case letter. The C library, the kernel's loader, Deno, Rust, V8 and ICU read upper-case
 * names only (LOCALDOMAIN, RES_OPTIONS, HOSTALIASES, TZDIR, LD_*, DENO_*, ...; Linux env names are
 * case-sensitive), so a name with a lower-case letter can equal none of them, whatever a future
 * version adds. The one lower-case convention is the proxy family (`http_proxy`, `no_proxy`, read
 * by Deno and curl), refused by suffix in any case. An allow-list by shape, not a list that must
 * grow: an agent may set `prompt` or `City`, never `RES_OPTIONS`.
 */
const ARG_HAS_LOWER = /[a-z]/;
const PROXY_SUFFIX = /_PROXY$/i;

/** Reserved regardless of letter case: Deno honours `http_proxy` as well as `HTTP_PROXY`. */
export function isReservedEnvName(name: string): boolean {
  const upper = name.toUpperCase();
  return (
    RESERVED_NAMES.has(upper) ||
    PROXY_SUFFIX.test(upper) ||
    [...RESERVED_PREFIXES, ...RESERVED_SECRET_PREFIXES].some((p) => upper.startsWith(p))
  );
}

export function checkSecretName(name: unknown): string {
  if (typeof name !== "string" || !SECRET_NAME.test(name)) {
    throw new PolicyError("invalid_secret_name", `secret name ${describe(name)} must match ^[A-Z][A-Z0-9_]{0,63}$`);
  }
  if (isReservedEnvName(name)) {
    throw new PolicyError("reserved_name", `secret name ${name} is reserved for the runtime`);
  }
  return name;
}

export function checkArgName(name: string): string {
  if (!ARG_NAME.test(name)) {
    throw new PolicyError("invalid_arg_name", `arg name ${describe(name)} must match ^[A-Za-z][A-Za-z0-9_]{0,63}$`);
  }
  if (isReservedEnvName(name)) {
    throw new PolicyError("reserved_name", `arg name ${name} is reserved for the runtime`);
  }
  if (!ARG_HAS_LOWER.test(name)) {
    throw new PolicyError(
      "reserved_name",
      `arg name ${name} needs a lower-case letter: all-capital names belong to the C library, the system and the runtime (e.g. ` +
        `LOCALDOMAIN, RES_OPTIONS), which args never set`,
    );
  }
  return name;
}

/** A short, printable rendering of untrusted input for error messages. */
export function describe(value: unknown): string {
  if (typeof value !== "string") return typeof value;
  const clipped = value.length > 40 ? `${value.slice(0, 40)}…` : value;
  return JSON.stringify(clipped);
}
