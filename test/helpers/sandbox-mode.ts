/**
 * Which sandbox this machine gives the runner, so each test asserts what that mode promises and
 * skips, with one line saying what to install, what it cannot check here.
 *
 * The prediction uses the runner's own probes (the same ones RUNNER_ISOLATION/RUNNER_EGRESS=auto use),
 * and every stack a test starts compares it with what /health reports (assertHealthMode). CI pins the
 * modes it expects with OAUTH3_EXPECT_ISOLATION / OAUTH3_EXPECT_EGRESS: a machine that silently falls
 * back to a weaker mode then fails instead of skipping.
 */
import assert from "node:assert/strict";
import { iptablesAvailable } from "../../vault-runner/src/firewall.ts";

export type Isolation = "per-run-uid" | "shared-uid";
export type Egress = "proxy+firewall" | "deno-only";
export interface SandboxMode {
  isolation: Isolation;
  egress: Egress;
}

const root = process.getuid?.() === 0;
const firewall = root && iptablesAvailable();

/** What the runner's "auto" picks on this machine. */
export const MODE: SandboxMode = {
  isolation: root ? "per-run-uid" : "shared-uid",
  egress: firewall ? "proxy+firewall" : "deno-only",
};

export const PER_RUN_UID = MODE.isolation === "per-run-uid";
export const PROXIED = MODE.egress === "proxy+firewall";

const HOW = {
  uid: "per-run uids: run the tests as root (the runner needs CAP_SETUID/SETGID/KILL/CHOWN)",
  proxy: "the egress proxy and firewall: run as root with iptables installed (apt-get install iptables)",
};

/**
 * The skip reason for a test that needs per-run uids and/or the egress proxy, or false when this
 * machine has them. Printed once per reason, so a newcomer's run says what to install.
 */
export function needs(what: { uid?: boolean; proxy?: boolean }): string | false {
  const missing: string[] = [];
  if (what.uid && !PER_RUN_UID) missing.push(HOW.uid);
  if (what.proxy && !PROXIED) missing.push(HOW.proxy);
  if (missing.length === 0) return false;
  const reason = `needs ${missing.join("; and ")}`;
  if (!printed.has(reason)) {
    printed.add(reason);
    process.stderr.write(`SKIPPED (this machine): ${reason}\n`);
  }
  return reason;
}
const printed = new Set<string>();

/** The pins CI sets; a mismatch between them and this machine fails the test that checks health. */
export function expectedPins(): Partial<SandboxMode> {
  const pins: Partial<SandboxMode> = {};
  const iso = process.env.OAUTH3_EXPECT_ISOLATION;
  const egr = process.env.OAUTH3_EXPECT_EGRESS;
  if (iso) pins.isolation = iso as Isolation;
  if (egr) pins.egress = egr as Egress;
  return pins;
}

/**
 * A runner's reported modes (from /health, a result's policy or an attested policy) are the ones this
 * machine allows, and the ones CI pinned.
 */
export function assertHealthMode(reported: { isolation?: unknown; egress?: unknown }): void {
  assert.deepEqual(
    { isolation: reported.isolation, egress: reported.egress },
    { ...MODE },
    "the runner chose another sandbox mode than its own probes predict on this machine",
  );
  const pins = expectedPins();
  for (const [key, want] of Object.entries(pins)) {
    assert.equal(
      reported[key as keyof SandboxMode],
      want,
      `OAUTH3_EXPECT_${key.toUpperCase()}=${want}, but the runner runs ${key} ${String(reported[key as keyof SandboxMode])}: ` +
        "this machine lacks what that mode needs (see the README's 'What sandbox you get')",
    );
  }
}
