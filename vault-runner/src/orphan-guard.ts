import { spawnSync } from "node:child_process";
import { existsSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";

/**
 * No skill may outlive its runner: a skill keeps its secrets and its network only while the runner
 * that started it watches its timeout and memory. Node cannot set PR_SET_PDEATHSIG for a child, so
 * each Deno process is started through util-linux's `setpriv --pdeathsig KILL`, which sets it and
 * then execs Deno (same pid, so the runner's group kill, RSS watchdog and exit status all still see
 * Deno). The kernel then SIGKILLs the skill the moment the runner dies, however it dies (SIGKILL,
 * OOM, crash). setpriv is part of util-linux, installed on every Debian system (the images too).
 *
 * The one gap is the microseconds between fork and setpriv's prctl (a parent that dies there is
 * never signalled): at start the runner kills whatever an earlier life left (reapLeftovers, and
 * UidPool.reapAll for the pool's uids).
 */
export function pdeathsigWrapper(): string[] | undefined {
  for (const path of ["/usr/bin/setpriv", "/bin/setpriv"]) {
    if (!existsSync(path)) continue;
    const probe = spawnSync(path, ["--pdeathsig", "KILL", "--", "/bin/true"], { stdio: "ignore", timeout: 5000 });
    if (probe.status === 0) return [path, "--pdeathsig", "KILL", "--"];
  }
  return undefined;
}

const LIVES_FILE = "work-dirs.json";

/**
 * The start-up reaper, for every isolation mode. Every process the runner starts names its run
 * directory in its argv from the first exec on (setpriv's argv holds Deno's), so a process whose
 * argv names a directory under an earlier life's work directory is a skill that life left behind.
 * Earlier lives' work directories are recorded in the runner's own state directory (never guessed
 * from a prefix, so another runner on the machine, even under the same uid, is never touched).
 * Kills those processes, removes what earlier lives left on disk, records this life's work
 * directory and returns the pids it killed.
 */
export function reapLeftovers(stateDir: string, workDir: string): number[] {
  const file = join(stateDir, LIVES_FILE);
  let earlier: string[] = [];
  try {
    const parsed: unknown = JSON.parse(readFileSync(file, "utf8"));
    if (Array.isArray(parsed)) earlier = parsed.filter((d): d is string => typeof d === "string" && d.startsWith("/"));
  } catch {
    // first life, or an unreadable record: nothing known to reap
  }
  const killed: number[] = [];
  for (const pid of processesUnder(earlier.map((d) => `${d.replace(/\/+$/, "")}/`))) {
    try {
      process.kill(pid, "SIGKILL");
      killed.push(pid);
    } catch {
      // exited meanwhile, or not ours to kill
    }
  }
  for (const dir of earlier) {
    if (dir === workDir) {
      // a configured RUNNER_WORK_DIR is reused: clear the runs it holds, keep the directory
      for (const entry of safeReaddir(dir)) rmSync(join(dir, entry), { recursive: true, force: true });
    } else {
      rmSync(dir, { recursive: true, force: true });
    }
  }
  writeFileSync(file, `${JSON.stringify([workDir])}\n`, { mode: 0o600 });
  return killed;
}

/** Pids (other than this process) with an argv element that starts with one of `prefixes`. */
function processesUnder(prefixes: string[]): number[] {
  if (prefixes.length === 0) return [];
  const found: number[] = [];
  for (const entry of safeReaddir("/proc")) {
    if (!/^\d+$/.test(entry) || Number(entry) === process.pid) continue;
    let argv: string[];
    try {
      argv = readFileSync(`/proc/${entry}/cmdline`, "utf8").split("\0");
    } catch {
      continue; // exited while we looked
    }
    if (argv.some((arg) => prefixes.some((p) => arg.startsWith(p)))) found.push(Number(entry));
  }
  return found;
}

function safeReaddir(dir: string): string[] {
  try {
    return readdirSync(dir);
  } catch {
    return [];
  }
}
