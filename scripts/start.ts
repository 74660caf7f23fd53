/**
 * `npm start`: launches vault-runner and gateway as two processes with separate environments.
 * Each child gets only the variables its own config schema names (an allowlist, not a blocklist),
 * so the runner never sees TELEGRAM_* and the gateway never sees SECRETS_*. Each process runs as a
 * bundle (scripts/build.ts), rebuilt from the sources at every start.
 *
 * Exit status, for a supervisor (systemd, compose `restart: on-failure`): when a child dies that
 * nobody asked to stop, the other is stopped and the launcher exits non-zero, naming the one that
 * died: 128+signal if it was killed by a signal, its own code if it failed, 1 if it exited 0 on its
 * own. SIGTERM/SIGINT to the launcher stops both and exits 0 (or the code of a child that failed
 * while stopping). A child that ignores SIGTERM for 10 s is killed.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { existsSync } from "node:fs";
import { constants } from "node:os";
import { fileURLToPath } from "node:url";
import { RUNNER_ENV_KEYS } from "../vault-runner/src/config.ts";
import { GATEWAY_ENV_KEYS } from "../gateway/src/config.ts";
import { DEFAULT_PATHS } from "../shared/src/index.ts";
import { buildBundles } from "./build.ts";

const root = fileURLToPath(new URL("..", import.meta.url));
const BASE_KEYS = ["PATH", "TZ", "LANG"];
const STOP_GRACE_MS = 10_000;

function pick(keys: readonly string[]): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const key of [...BASE_KEYS, ...keys]) if (process.env[key] !== undefined) env[key] = process.env[key];
  return env;
}

const children: ChildProcess[] = [];
/** Why the launcher is stopping: asked (a signal to it), or a child's unrequested exit. */
let stopping: { requested: boolean } | undefined;
let exitCode = 0;

function launch(name: string, entry: string, env: NodeJS.ProcessEnv): ChildProcess {
  const child = spawn(process.execPath, ["--enable-source-maps", entry], { cwd: process.cwd(), env, stdio: "inherit" });
  child.on("exit", (code, signal) => onChildExit(name, code, signal));
  children.push(child);
  return child;
}

function onChildExit(name: string, code: number | null, signal: NodeJS.Signals | null): void {
  if (!stopping) {
    // Nobody asked this child to stop: a crash, a kill, or an exit on its own. Never report success.
    exitCode = signal ? 128 + (constants.signals[signal] ?? 0) : code === 0 || code === null ? 1 : code;
    const how = signal ? `was killed by ${signal}` : code === 0 ? "exited 0 on its own" : `exited with code ${code}`;
    process.stderr.write(`oauth3-proxy: ${name} ${how}; stopping the other process; exit status ${exitCode}\n`);
    stopAll({ requested: false });
  } else if (stopping.requested && code !== null && code !== 0 && exitCode === 0) {
    exitCode = code;
    process.stderr.write(`oauth3-proxy: ${name} exited with code ${code} while stopping\n`);
  }
  exitWhenAllStopped();
}

function stopAll(why: { requested: boolean }): void {
  if (stopping) return;
  stopping = why;
  for (const c of children) {
    if (c.exitCode !== null || c.signalCode !== null) continue;
    c.kill("SIGTERM");
    setTimeout(() => c.exitCode === null && c.signalCode === null && c.kill("SIGKILL"), STOP_GRACE_MS).unref();
  }
  exitWhenAllStopped();
}

function exitWhenAllStopped(): void {
  if (stopping && children.every((c) => c.exitCode !== null || c.signalCode !== null)) process.exit(exitCode);
}

process.on("SIGINT", () => stopAll({ requested: true }));
process.on("SIGTERM", () => stopAll({ requested: true }));

const runnerEnv = pick(RUNNER_ENV_KEYS);
const gatewayEnv = pick([...GATEWAY_ENV_KEYS, "NODE_EXTRA_CA_CERTS"]);
const socket = runnerEnv.RUNNER_SOCKET ?? DEFAULT_PATHS.runnerSocket;
gatewayEnv.RUNNER_SOCKET ??= socket;

await buildBundles(); // the current sources, every start
launch("vault-runner", `${root}dist/vault-runner.mjs`, runnerEnv);
// The gateway starts once the runner serves its socket (it would answer 503 until then anyway).
const started = Date.now();
while (!existsSync(socket) && Date.now() - started < 20_000 && !stopping) {
  await new Promise((r) => setTimeout(r, 100));
}
if (!stopping) launch("gateway", `${root}dist/gateway.mjs`, gatewayEnv);
else exitWhenAllStopped();
