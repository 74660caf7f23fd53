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
  oauth3: "cli/src/main.ts", // the operator/agent CLI, for the gateway image
} as const;
export type BundleName = keyof typeof ENTRIES;

/** Builds the named bundles (default: the two processes `npm start` runs). */
export async function buildBundles(names: readonly BundleName[] = ["gateway", "vault-runner"]): Promise<void> {
  for (const name of names) {
    const entry = ENTRIES[name];
    if (!entry) throw new Error(`unknown bundle ${name}; known: ${Object.keys(ENTRIES).join(", ")}`);
    await build({
      ...(name === "oauth3" && { banner: { js: "#!/usr/bin/env node" } }),
      absWorkingDir: root,
      entryPoints: [entry],
      outfile: `dist/${name}.mjs`,
      bundle: true,
      platform: "node",
      format: "esm",
      target: "node20",
      sourcemap: true,
      logLevel: "warning",
      plugins: [
        {
          name: "npm-packages-external",
          setup(b) {
            b.onResolve({ filter: /^[^./]/ }, (args) =>
              args.path.startsWith("@oauth3/") ? undefined : { path: args.path, external: true },
            );
          },
        },
      ],
    });
  }
  await stop(); // esbuild keeps a service process otherwise
}

// `npm run build [-- <name>...]`; the Dockerfiles build only what their image runs.
if (import.meta.url === `file://${process.argv[1]}`) {
  const names = process.argv.slice(2) as BundleName[];
  await buildBundles(names.length > 0 ? names : (Object.keys(ENTRIES) as BundleName[]));
}
