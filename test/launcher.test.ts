/**
 * The `npm start` launcher tells a supervisor the truth: the real launcher with the real bundles,
 * one child killed or stopped behind its back, the exit status and the message read from outside.
 */
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { spawn } from "node:child_process";
import { once } from "node:events";
import { join } from "node:path";
import { freePort, ROOT, Stack } from "./helpers/stack.ts";
import { tempDir } from "./helpers/tmp.ts";

async function startStack(): Promise<Stack> {
  const stack = new Stack({ dir: tempDir("oauth3-launch-"), port: await freePort(), env: { RUNNER_SKILL_UID_BASE: "66900" } });
  await stack.start();
  return stack;
}

const alive = (pid: number) => existsSync(`/proc/${pid}`) && !/^\S+ \(.*\) Z/.test(readStat(pid));
function readStat(pid: number): string {
  try {
    return readFileSync(`/proc/${pid}/stat`, "utf8");
  } catch {
    return "";
  }
}

describe("npm start's exit status", () => {
  for (const [victim, index] of [
    ["vault-runner", 0],
    ["gateway", 1],
  ] as const) {
    test(`kill -9 of the ${victim}: the other is stopped and the launcher exits 137, naming it`, async () => {
      const stack = await startStack();
      const pids = stack.childPids();
      process.kill(pids[index], "SIGKILL");
      assert.equal(await stack.exited(), 137);
      assert.match(stack.log(), new RegExp(`oauth3-proxy: ${victim} was killed by SIGKILL; stopping the other process; exit status 137`));
      assert.ok(!alive(pids[1 - index]!), "the survivor was stopped too");
    });
  }

  test("a child that exits 0 nobody asked for is still a failure (exit 1)", async () => {
    const stack = await startStack();
    const [, gateway] = stack.childPids();
    process.kill(gateway, "SIGTERM"); // the gateway stops cleanly, but the launcher was not asked to
    assert.equal(await stack.exited(), 1);
    assert.match(stack.log(), /oauth3-proxy: gateway exited 0 on its own; stopping the other process; exit status 1/);
  });

  test("a child that fails at start: its code", async () => {
    const stack = new Stack({ dir: tempDir("oauth3-launch-"), port: await freePort(), env: { EXECUTOR_MODE: "docker" } });
    await assert.rejects(stack.start(), /stack exited early/);
    assert.equal(await stack.exited(), 1);
    assert.match(stack.log(), /oauth3-proxy: gateway exited with code 1; stopping the other process; exit status 1/);
  });

  for (const signal of ["SIGTERM", "SIGINT"] as const) {
    test(`${signal} to the launcher is a clean stop: exit 0, both children gone`, async () => {
      const stack = await startStack();
      const pids = stack.childPids();
      assert.equal(await stack.stop(signal), 0);
      assert.ok(!/oauth3-proxy: .* (killed|exited)/.test(stack.log()), stack.log());
      for (const pid of pids) assert.ok(!alive(pid), `child ${pid} stopped`);
    });
  }

  test("through `npm start` itself: SIGTERM to npm stops both (no orphan) with 0; kill -9 of a child gives 137", async () => {
    for (const how of ["npm", "child"] as const) {
      const dir = tempDir("oauth3-npmstart-");
      const port = await freePort();
      writeFileSync(join(dir, "secrets.env"), "", { mode: 0o600 }); // not the repository's own ./secrets.env
      const stack = new Stack({ dir, port, env: { RUNNER_SKILL_UID_BASE: "66950", SECRETS_FILE: join(dir, "secrets.env") } });
      const npm = spawn("npm", ["start", "--silent"], {
        cwd: ROOT,
        env: { ...stack.env, HOME: process.env.HOME ?? dir },
        stdio: ["ignore", "ignore", "pipe"],
      });
      let err = "";
      npm.stderr!.on("data", (c: Buffer) => (err += c));
      const deadline = Date.now() + 60_000;
      while (
        !(await fetch(`${stack.baseUrl}/health`).then(
          (r) => r.ok,
          () => false,
        ))
      ) {
        assert.ok(Date.now() < deadline && npm.exitCode === null, `npm start came up: ${err}`);
        await new Promise((r) => setTimeout(r, 200));
      }
      const launcher = Number(readFileSync(`/proc/${npm.pid}/task/${npm.pid}/children`, "utf8").trim().split(/\s+/)[0]);
      const kids = readFileSync(`/proc/${launcher}/task/${launcher}/children`, "utf8").trim().split(/\s+/).map(Number);
      assert.equal(kids.length, 2, "npm -> launcher -> runner and gateway (the script execs, no shell between)");
      process.kill(how === "npm" ? npm.pid! : kids[0]!, how === "npm" ? "SIGTERM" : "SIGKILL");
      const [code] = (await once(npm, "exit")) as [number | null];
      assert.equal(code, how === "npm" ? 0 : 137);
      await new Promise((r) => setTimeout(r, 200));
      for (const pid of [launcher, ...kids]) assert.ok(!alive(pid), `${pid} is gone after ${how}`);
    }
  });
});
