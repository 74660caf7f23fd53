import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";

/**
 * No skill may outlive its runner: a skill keeps its secrets and its network only while the runner
 * that started it watches its timeout and memory. Node cannot set PR_SET_PDEATHSIG for a child, so
 * each Deno process is started through util-linux's `setpriv --pdeathsig KILL`, which sets it and
 * then execs Deno (same pid, so the runner's group kill, RSS watchdog and exit status all still see
 * Deno). The kernel then SIGKILLs the skill the moment the runner dies, however it dies (SIGKILL,
 * OOM, crash). setpriv is part of util-linux, installed on every Debian system (the images too).
 *
 * The one gap is the microseconds between fork and setpriv's prctl; per-run uids close it too: at
 * start the runner kills whatever still runs under its pool's uids (UidPool.reapAll).
 */
export function pdeathsigWrapper(): string[] | undefined {
  for (const path of ["/usr/bin/setpriv", "/bin/setpriv"]) {
    if (!existsSync(path)) continue;
    const probe = spawnSync(path, ["--pdeathsig", "KILL", "--", "/bin/true"], { stdio: "ignore", timeout: 5000 });
    if (probe.status === 0) return [path, "--pdeathsig", "KILL", "--"];
  }
  return undefined;
}
