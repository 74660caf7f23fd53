/**
 * The `oauth3` program: argv and the environment in, exit status out. cli/bin/oauth3.js runs it
 * from the sources (tsx) in a checkout; the gateway image runs its bundle (dist/oauth3.mjs).
 */
import { runCli } from "./cli.js";

// exitCode, not exit(): exit() would cut off output still queued for a pipe.
process.exitCode = await runCli(process.argv.slice(2), process.env, (s) => process.stdout.write(`${s}\n`));
