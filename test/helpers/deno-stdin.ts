import { spawn } from "node:child_process";
import { once } from "node:events";
import { join } from "node:path";
import { resolveDenoBinary } from "../../vault-runner/src/deno-binary.ts";

/**
 * Runs `code` with the project's Deno (`deno run <flags> -`, the code on stdin) in an environment
 * of exactly `env` plus a private HOME/DENO_DIR under `dir`: the egress proxy's tests and benchmark
 * drive a skill this way, without the runner around it.
 */
export async function runDenoStdin(
  dir: string,
  flags: string[],
  env: Record<string, string>,
  code: string,
): Promise<{ status: number | null; stdout: string; stderr: string }> {
  const child = spawn(resolveDenoBinary(), ["run", "--no-prompt", ...flags, "-"], {
    env: { PATH: "/usr/bin:/bin", HOME: dir, DENO_DIR: join(dir, "deno"), NO_COLOR: "1", ...env },
    stdio: ["pipe", "pipe", "pipe"],
  });
  let stdout = "";
  let stderr = "";
  child.stdout.on("data", (c: Buffer) => (stdout += c));
  child.stderr.on("data", (c: Buffer) => (stderr += c));
  child.stdin.end(code);
  const [status] = (await once(child, "exit")) as [number | null];
  return { status, stdout, stderr };
}
