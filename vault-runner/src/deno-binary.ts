import { execFileSync } from "node:child_process";
import { existsSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";

const require = createRequire(import.meta.url);

/**
 * Finds the Deno binary shipped by the npm `deno` package (the per-platform `@deno/<target>` package
 * holds it). `DENO_PATH` overrides. glibc only: Deno publishes no musl build.
 */
export function resolveDenoBinary(override?: string): string {
  if (override) return override;
  const arch = process.arch === "arm64" ? "arm64" : "x64";
  const candidates = [`@deno/linux-${arch}-glibc/package.json`, "deno/package.json"];
  for (const candidate of candidates) {
    try {
      const dir = dirname(require.resolve(candidate));
      const bin = join(dir, "deno");
      if (existsSync(bin)) return bin;
    } catch {
      // try the next candidate
    }
  }
  throw new Error("Deno binary not found: run `npm ci` (package `deno`) or set DENO_PATH");
}

export function denoVersion(binary: string): string {
  const out = execFileSync(binary, ["--version"], {
    env: { PATH: "/usr/bin:/bin", DENO_NO_UPDATE_CHECK: "1", NO_COLOR: "1" },
    encoding: "utf8",
    timeout: 10_000,
  });
  const match = /^deno (\S+)/m.exec(out);
  if (!match) throw new Error(`unexpected output from ${binary} --version`);
  return match[1]!;
}
