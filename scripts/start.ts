/**
 * `npm start`: launches vault-runner and gateway as two processes with separate environments.
 * Each child gets only the variables its own config schema names (an allowlist, not a blocklist),
 * so the runner never sees TELEGRAM_* and the gateway never sees SECRETS_*. If either process exits,
 * the other is stopped and the launcher exits with that status. Each process runs as a bundle
 * (scripts/build.ts), rebuilt from the sources at every start.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { RUNNER_ENV_KEYS } from "../vault-runner/src/config.ts";
import { GATEWAY_ENV_KEYS } from "../gateway/src/config.ts";
import { buildBundles } from "./build.ts";

const root = fileURLToPath(new URL("..", import.meta.url));
const BASE_KEYS = ["PATH", "TZ", "LANG"];

function pick(keys: readonly string[]): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const key of [...BASE_KEYS, ...keys]) if (process.env[key] !== undefined) env[key] = process.env[key];
  return env;
}

function launch(name: string, entry: string, env: NodeJS.ProcessEnv): ChildProcess {
  const child = spawn(process.execPath, ["--enable-source-maps", entry], { cwd: process.cwd(), env, stdio: "inherit" });
  child.on("exit", (code, signal) => stopAll(name, code ?? (signal ? 1 : 0)));
  return child;
}

const children: ChildProcess[] = [];
let stopping = false;
function stopAll(who: string, code: number): void {
  if (!stopping) {
    stopping = true;
    if (who !== "signal") process.stderr.write(`oauth3-proxy: ${who} exited (${code}); stopping\n`);
    for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill("SIGTERM");
  }
  if (children.every((c) => c.exitCode !== null || c.signalCode !== null)) process.exit(code);
}
process.on("SIGINT", () => stopAll("signal", 0));
process.on("SIGTERM", () => stopAll("signal", 0));

const runnerEnv = pick(RUNNER_ENV_KEYS);
const gatewayEnv = pick([...GATEWAY_ENV_KEYS, "NODE_EXTRA_CA_CERTS"]);
const socket = runnerEnv.RUNNER_SOCKET ?? "./data/run/runner.sock";
gatewayEnv.RUNNER_SOCKET ??= socket;

await buildBundles(); // the current sources, every start
children.push(launch("vault-runner", `${root}dist/vault-runner.mjs`, runnerEnv));
// The gateway starts once the runner serves its socket (it would answer 503 until then anyway).
const started = Date.now();
while (!existsSync(socket) && Date.now() - started < 20_000 && !stopping) {
  await new Promise((r) => setTimeout(r, 100));
}
if (!stopping) children.push(launch("gateway", `${root}dist/gateway.mjs`, gatewayEnv));
