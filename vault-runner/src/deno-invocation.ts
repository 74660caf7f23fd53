import { DENO_BASE_FLAGS, type RunSpec } from "@oauth3/shared";

/**
 * Addresses Deno must refuse even for an allowed name (it checks resolved IPv4 addresses against
 * these). Not a complete egress control on its own (no IPv6 ranges, some address forms slip by):
 * in proxy+firewall mode the egress proxy checks every address itself (egress-proxy.ts) and this
 * list is the deno-only mode's whole address check.
 */
export const DENY_NET_CIDRS = [
  "0.0.0.0/8",
  "10.0.0.0/8",
  "100.64.0.0/10",
  "127.0.0.0/8",
  "169.254.0.0/16",
  "172.16.0.0/12",
  "192.0.0.0/24",
  "192.168.0.0/16",
  "198.18.0.0/15",
  "224.0.0.0/4",
  "240.0.0.0/4",
];

/**
 * DENY_NET_CIDRS with one loopback address left out (the placeholder proxy of deno-only mode):
 * 127.0.0.0/8 becomes the 24 blocks around that address, so Deno lets the skill reach the proxy
 * and still refuses every other loopback address an allowed name might resolve to.
 */
export function denyNetExcept(address: string): string[] {
  const parts = address.split(".").map(Number);
  if (parts.length !== 4 || parts[0] !== 127 || parts.some((p) => !Number.isInteger(p) || p < 0 || p > 255)) {
    throw new Error(`${address} is not an IPv4 loopback address`);
  }
  const a = ((parts[0]! << 24) | (parts[1]! << 16) | (parts[2]! << 8) | parts[3]!) >>> 0;
  const blocks: string[] = [];
  for (let prefix = 9; prefix <= 32; prefix++) {
    const bit = 1 << (32 - prefix);
    const mask = prefix === 32 ? 0xffffffff : ~(bit - 1) >>> 0;
    const sibling = ((a ^ bit) & mask) >>> 0;
    blocks.push(`${[24, 16, 8, 0].map((sh) => (sibling >>> sh) & 255).join(".")}/${prefix}`);
  }
  return DENY_NET_CIDRS.flatMap((c) => (c === "127.0.0.0/8" ? blocks : [c]));
}

/**
 * The flags every run gets, whatever it asked for (per-run additions: --allow-net=<hosts>,
 * --allow-env=<names>, the skill file). Reported by the self-audit and bound by the attestation.
 */
export function fixedDenoFlags(limits: Pick<InvocationLimits, "v8MaxOldSpaceMb"> & { proxy: boolean }): string[] {
  return [
    ...DENO_BASE_FLAGS,
    ...(limits.proxy ? [] : [`--deny-net=${DENY_NET_CIDRS.join(",")}`]),
    `--v8-flags=--max-old-space-size=${limits.v8MaxOldSpaceMb}`,
  ];
}

export interface InvocationPaths {
  skillFile: string;
  homeDir: string;
  denoDir: string;
}

export interface InvocationLimits {
  v8MaxOldSpaceMb: number;
  /** The run's egress proxy URL (with its credentials); absent in deno-only egress mode. */
  proxyUrl?: string | undefined;
  /**
   * Deno-only mode with placeholders: the run goes through the intercepting proxy at this loopback
   * address, which --deny-net leaves out (everything else stays denied).
   */
  proxyAddressInDenyNet?: string | undefined;
  /** Extra CA certificates (PEM) skills trust, from the operator (a TLS-inspecting egress, tests). */
  caFile?: string | undefined;
}

export interface Invocation {
  args: string[];
  env: Record<string, string>;
}

/**
 * Builds Deno's argv and environment from nothing but the validated spec. The environment is made
 * from scratch: the runner's own variables never reach a skill. Secrets go in the environment only
 * (argv is world-readable in /proc/<pid>/cmdline). Never emits a bare --allow-net/--allow-env (they
 * grant everything), -A, --allow-read/write/run/ffi/sys/import, --location, --import-map, --env-file.
 */
export function buildInvocation(
  spec: RunSpec,
  secrets: ReadonlyMap<string, string>,
  paths: InvocationPaths,
  limits: InvocationLimits,
): Invocation {
  const args = ["run", ...DENO_BASE_FLAGS];
  if (spec.network.length > 0) args.push(`--allow-net=${spec.network.join(",")}`);
  // With the proxy, Deno must not resolve names itself (the skill uid may not reach DNS; the proxy
  // resolves and checks every address). Without it, --deny-net is the address check.
  if (limits.proxyAddressInDenyNet) args.push(`--deny-net=${denyNetExcept(limits.proxyAddressInDenyNet).join(",")}`);
  else if (!limits.proxyUrl) args.push(`--deny-net=${DENY_NET_CIDRS.join(",")}`);
  const envNames = [...spec.secretNames, ...spec.args.map((a) => a.name)];
  if (envNames.length > 0) args.push(`--allow-env=${envNames.join(",")}`);
  args.push(`--v8-flags=--max-old-space-size=${limits.v8MaxOldSpaceMb}`);
  args.push(paths.skillFile);

  const env: Record<string, string> = {
    PATH: "/usr/bin:/bin",
    HOME: paths.homeDir,
    DENO_DIR: paths.denoDir,
    DENO_NO_UPDATE_CHECK: "1",
    NO_COLOR: "1",
    LANG: "C.UTF-8",
    TZ: "UTC",
    ...(limits.proxyUrl && { HTTP_PROXY: limits.proxyUrl, HTTPS_PROXY: limits.proxyUrl }),
    ...(limits.caFile && { DENO_CERT: limits.caFile }),
  };
  // Args first, secrets last: names cannot collide (checked), and even if a check regressed a
  // secret would win over an arg of the same name.
  for (const { name, value } of spec.args) env[name] = value;
  for (const name of spec.secretNames) {
    const value = secrets.get(name);
    if (value === undefined) throw new Error(`secret ${name} was not provided to the invocation`);
    env[name] = value;
  }
  return { args, env };
}
