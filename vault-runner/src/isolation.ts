import { spawnSync } from "node:child_process";
import { chmodSync, chownSync, mkdirSync, mkdtempSync, readFileSync, rmdirSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { UidPool } from "./uid-pool.js";

export interface IsolationChoice {
  mode: "uid" | "shared-uid";
  uidPool?: UidPool;
  workDir: string;
  /** Why the weaker mode was chosen, for a loud start-up warning. */
  warning?: string;
}

/**
 * Decides how skills are separated from the runner and from each other.
 *  - "uid": every run gets its own uid from a pool. Needs root or CAP_SETUID+CAP_SETGID+CAP_KILL+CAP_CHOWN.
 *    Verified by actually starting Deno under a pool uid; if that fails, start-up fails.
 *  - "shared-uid": skills run as the runner's uid. Weaker: a skill can read every file the runner can
 *    (Deno's static imports need no read permission), including the secrets file. Only when asked
 *    for explicitly, or by "auto" when the runner cannot switch uids; always labelled.
 */
export function chooseIsolation(options: {
  requested: "auto" | "uid" | "shared-uid";
  denoPath: string;
  uidBase: number;
  poolSize: number;
  workDir?: string | undefined;
}): IsolationChoice {
  const isRoot = process.getuid?.() === 0;
  const mode = options.requested === "auto" ? (isRoot ? "uid" : "shared-uid") : options.requested;
  const workDir = prepareWorkDir(options.workDir);
  if (mode === "shared-uid") {
    return {
      mode,
      workDir,
      warning:
        options.requested === "auto"
          ? "skills run under the runner's own uid (shared-uid): the runner is not root and cannot switch uids. " +
            "A skill can read any file this uid can read, including the secrets file. Run as root or with " +
            "CAP_SETUID/CAP_SETGID/CAP_KILL/CAP_CHOWN and RUNNER_ISOLATION=uid for per-run uids."
          : "RUNNER_ISOLATION=shared-uid: skills run under the runner's own uid and can read its files",
    };
  }
  assertPoolIdsUnassigned(options.uidBase, options.poolSize);
  const probe = spawnSync(options.denoPath, ["--version"], {
    uid: options.uidBase,
    gid: options.uidBase,
    env: { PATH: "/usr/bin:/bin", DENO_NO_UPDATE_CHECK: "1", DENO_DIR: "/nonexistent" },
    timeout: 15_000,
  });
  if (probe.error || probe.status !== 0) {
    throw new Error(
      `RUNNER_ISOLATION=uid: cannot start Deno as uid ${options.uidBase} ` +
        `(${probe.error?.message ?? `exit ${probe.status}`}); the runner needs root or CAP_SETUID/CAP_SETGID/CAP_KILL/CAP_CHOWN`,
    );
  }
  requireTraversable(workDir);
  // Each run's private DENO_DIR is handed to the run's uid and taken back afterwards: CAP_CHOWN.
  const probeDir = mkdtempSync(join(workDir, "chown-probe-"));
  try {
    chownSync(probeDir, options.uidBase, options.uidBase);
    chownSync(probeDir, process.getuid!(), process.getgid!());
  } catch (err) {
    throw new Error(`RUNNER_ISOLATION=uid: cannot chown (${(err as Error).message}); the runner needs CAP_CHOWN`);
  } finally {
    rmdirSync(probeDir);
  }
  return { mode, workDir, uidPool: new UidPool(options.uidBase, options.poolSize) };
}

/** A work directory skills can traverse (0711) but not list; private per runner life by default. */
function prepareWorkDir(configured: string | undefined): string {
  if (!configured) {
    const dir = mkdtempSync(join(tmpdir(), "oauth3-work-"));
    chmodSync(dir, 0o711);
    return dir;
  }
  mkdirSync(configured, { recursive: true, mode: 0o711 });
  chmodSync(configured, 0o711);
  return configured;
}

function requireTraversable(dir: string): void {
  for (let d = dir; ; d = dirname(d)) {
    if (!(statSync(d).mode & 0o001)) {
      throw new Error(`skill uids cannot reach ${dir}: ${d} is not searchable by others (chmod o+x or set RUNNER_WORK_DIR)`);
    }
    if (d === dirname(d)) return;
  }
}

/**
 * The pool's uids and gids must belong to no account or group on this host: a skill running as a
 * real user's uid could touch that user's files, one with a real group's gid gets that group's
 * access, and the pool's reaper kills every process of its uids, a real user's too. Checked through
 * NSS (`getent`, i.e. getpwuid/getgrgid: /etc/passwd, LDAP, systemd-userdb, ...), falling back to
 * /etc/passwd and /etc/group where getent is missing. Throws naming the first clash.
 */
export function assertPoolIdsUnassigned(base: number, size: number): void {
  const ids = Array.from({ length: size }, (_, i) => base + i);
  for (const [db, what] of [
    ["passwd", "user"],
    ["group", "group"],
  ] as const) {
    const clash = assignedIds(db, ids);
    if (clash) {
      throw new Error(
        `RUNNER_SKILL_UID_BASE=${base}: ${what === "user" ? "uid" : "gid"} ${clash.id} is ${what} "${clash.name}" on this host; ` +
          `skill ${what === "user" ? "uids" : "gids"} ${base}..${base + size - 1} must belong to no account (choose another base)`,
      );
    }
  }
}

function assignedIds(db: "passwd" | "group", ids: number[]): { id: number; name: string } | undefined {
  const wanted = new Set(ids);
  let text: string;
  const r = spawnSync("getent", [db, ...ids.map(String)], { encoding: "utf8", timeout: 10_000 });
  if (!r.error && (r.status === 0 || r.status === 2)) {
    text = r.stdout; // exit 2: some keys were not found
  } else {
    try {
      text = readFileSync(`/etc/${db}`, "utf8");
    } catch {
      return undefined; // no account database at all: nothing to clash with
    }
  }
  for (const line of text.split("\n")) {
    const fields = line.split(":");
    const id = Number(fields[2]);
    if (fields.length >= 3 && wanted.has(id)) return { id, name: fields[0]! };
  }
  return undefined;
}
