/**
 * No skill outlives its runner. The real launcher (`npm start`), a real skill holding a secret and
 * sleeping, then kill -9 of the vault-runner mid-run: one second later no process of that run is
 * alive (per-run uid as root, the runner's own uid otherwise), and after a restart the request is
 * `interrupted` (never re-run) with the reason, not `failed`.
 */
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { spawn, type ChildProcess } from "node:child_process";
import { readdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { freePort, Stack } from "./helpers/stack.ts";
import { tempDir } from "./helpers/tmp.ts";
import { MODE } from "./helpers/sandbox-mode.ts";

const SECRET = "orphan-secret-value-4e1b";

/** Live (not zombie) processes whose command line names this request's run directory. */
function runProcesses(requestId: string): Array<{ pid: number; uid: number }> {
  const found: Array<{ pid: number; uid: number }> = [];
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      if (!readFileSync(`/proc/${entry}/cmdline`, "utf8").includes(requestId)) continue;
      const status = readFileSync(`/proc/${entry}/status`, "utf8");
      if (/^State:\s+Z/m.test(status)) continue; // dead, waiting to be reaped: holds nothing
      found.push({ pid: Number(entry), uid: Number(/^Uid:\s+(\d+)/m.exec(status)![1]) });
    } catch {
      // gone while we looked
    }
  }
  return found;
}

describe("no skill outlives its runner", () => {
  test(`kill -9 of the runner mid-run (${MODE.isolation}): the skill is dead within a second; the request ends interrupted`, async () => {
    const dir = tempDir("oauth3-orphan-");
    writeFileSync(join(dir, "secrets.env"), `FOO=${SECRET}\n`, { mode: 0o600 });
    const stack = new Stack({
      dir,
      port: await freePort(),
      env: { SECRETS_FILE: join(dir, "secrets.env"), RUNNER_BINDINGS: "FOO env", RUNNER_SKILL_UID_BASE: "67200" },
    });
    await stack.start();
    const code = `// @secrets FOO\nconst held = Deno.env.get("FOO"); await new Promise((r) => setTimeout(r, 25_000)); console.log(held.length);`;
    const { json } = await stack.post({
      skill_id: "sleeper",
      skill_url: `data:text/typescript,${encodeURIComponent(code)}`,
      secrets: ["FOO"],
    });
    const id = String(json.request_id);
    assert.equal(stack.cli("approve", id).code, 0);
    const deadline = Date.now() + 20_000;
    while (runProcesses(id).length === 0) {
      assert.ok(Date.now() < deadline, "the skill started");
      await new Promise((r) => setTimeout(r, 50));
    }
    const skill = runProcesses(id);
    if (MODE.isolation === "per-run-uid")
      assert.ok(
        skill.every((p) => p.uid >= 67200 && p.uid < 67212),
        JSON.stringify(skill),
      );
    const [runner] = stack.childPids();
    process.kill(runner, "SIGKILL");
    await new Promise((r) => setTimeout(r, 1000));
    assert.deepEqual(runProcesses(id), [], "one second after the runner died, nothing of the run is alive");
    assert.equal(await stack.exited(), 137);

    await stack.start();
    const final = await stack.status(id);
    assert.equal(final.status, "interrupted", JSON.stringify(final));
    assert.match(String(final.error), /will not be run again/);
    assert.ok(!stack.log().includes(SECRET));
    await stack.stop();
  });

  test("a skill an earlier runner left (died before the death signal was armed) is killed at the next start; other processes are not", async () => {
    const dir = tempDir("oauth3-orphan-left-");
    const stack = new Stack({ dir, port: await freePort(), env: { RUNNER_SKILL_UID_BASE: "67220" } });
    const idle = "setInterval(() => {}, 1000)";
    const spawned: ChildProcess[] = [];
    try {
      await stack.start();
      await stack.stop();
      const lives = join(dir, "runner-state", "work-dirs.json");
      const [earlier] = JSON.parse(readFileSync(lives, "utf8")) as string[];
      assert.ok(earlier?.startsWith("/"), "the runner records its work directory");
      // What the fork -> prctl window leaves: a process whose argv names a run directory of the dead
      // runner's work directory, and no death signal. The control names a directory elsewhere.
      const left = spawn(process.execPath, ["-e", idle, join(earlier!, "req-left-0", "skill.ts")], { detached: true, stdio: "ignore" });
      const control = spawn(process.execPath, ["-e", idle, join(dir, "elsewhere", "skill.ts")], { detached: true, stdio: "ignore" });
      spawned.push(left, control);
      const gone = new Promise<void>((resolve) => left.once("exit", () => resolve()));
      await stack.start();
      const timeout = new Promise((_, reject) => setTimeout(() => reject(new Error("the leftover was not killed")), 1000).unref());
      await Promise.race([gone, timeout]);
      assert.equal(left.signalCode, "SIGKILL");
      assert.equal(control.exitCode, null, "a process outside the runner's earlier work directory is left alone");
      assert.equal(control.signalCode, null);
      assert.match(stack.log(), /killed skill processes left running by an earlier runner/);
      const [now] = JSON.parse(readFileSync(lives, "utf8")) as string[];
      assert.notEqual(now, earlier, "each life has its own work directory");
      assert.throws(() => readdirSync(earlier!), /ENOENT/, "the earlier life's work directory is removed");
    } finally {
      await stack.stop();
      for (const child of spawned) child.kill("SIGKILL");
    }
  });
});
