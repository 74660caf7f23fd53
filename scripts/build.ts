/**
 * Bundles each process's TypeScript into one ESM file under dist/ (esbuild), so they run on plain
 * Node without tsx's loader thread: ~33 MB less resident memory per process and a faster start
 * (docs/benchmarks.md). Our own workspaces are bundled; npm packages stay external and are loaded
 * from node_modules (dist/ sits in the repository so Node's resolution finds them).
 */
import { build, stop } from "esbuild";
import { fileURLToPath } from "node:url";

const root = fileURLToPath(new URL("..", import.meta.url));

export const ENTRIES = {
  gateway: "gateway/src/main.ts",
  "vault-runner": "vault-runner/src/main.ts",
} as const;

export async function buildBundles(): Promise<void> {
  for (const [name, entry] of Object.entries(ENTRIES)) {
    await build({
      absWorkingDir: root,
      entryPoints: [entry],
      outfile: `dist/${name}.mjs`,
      bundle: true,
      platform: "node",
      format: "esm",
      target: "node20",
      sourcemap: true,
      logLevel: "warning",
      plugins: [{
        name: "npm-packages-external",
        setup(b) {
          b.onResolve({ filter: /^[^./]/ }, (args) =>
            args.path.startsWith("@oauth3/") ? undefined : { path: args.path, external: true });
        },
      }],
    });
  }
  await stop(); // esbuild keeps a service process otherwise
}

if (import.meta.url === `file://${process.argv[1]}`) await buildBundles();
