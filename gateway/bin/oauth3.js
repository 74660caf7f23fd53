#!/usr/bin/env node
// Entry point for the operator CLI: runs the TypeScript source through tsx.
import { register } from "tsx/esm/api";
import { fileURLToPath } from "node:url";
register();
const { runCli } = await import(fileURLToPath(new URL("../src/cli.ts", import.meta.url)));
// exitCode, not exit(): exit() would cut off output still queued for a pipe.
process.exitCode = await runCli(process.argv.slice(2), process.env, (s) => process.stdout.write(`${s}\n`));
