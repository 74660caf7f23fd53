/**
 * The Deno flags every run gets whatever it asked for: no prompt, config, lock file, remote or npm
 * code or downloads, and every permission denied that a run is not granted (per run the runner adds
 * only --allow-net=<hosts>, --allow-env=<names> and the memory cap). The runner builds argv from
 * this list (deno-invocation.ts); the gateway's self-audit fails a runner that reports one missing.
 */
export const DENO_BASE_FLAGS: readonly string[] = [
  "--no-prompt",
  "--no-config",
  "--no-lock",
  "--no-remote",
  "--no-npm",
  "--cached-only",
  "--deny-read",
  "--deny-write",
  "--deny-run",
  "--deny-ffi",
  "--deny-sys",
];
