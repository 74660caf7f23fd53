/**
 * `npm run secrets-env -- <secrets.env> [bindings.conf]`: turns a dotenv file of skill secrets and
 * their bindings (default ./bindings.conf, vault-runner/src/bindings.ts) into the one line
 * `SECRETS_JSON=<base64>`, each entry `{"value", "bind"}`, for Phala Cloud's encrypted env (`phala deploy -e secrets/.env`), where
 * compose hands it to the vault-runner only. The names are checked with the runner's own rules first;
 * the output holds the values (base64 is an encoding, not protection): write it straight into the
 * env file, e.g. `npm run -s secrets-env -- secrets.env >> secrets/.env`, never into a terminal log.
 */
import { existsSync } from "node:fs";
import { bindingText } from "../vault-runner/src/bindings.ts";
import { loadSecrets } from "../vault-runner/src/secrets.ts";

const file = process.argv[2];
const bindingsFile = process.argv[3] ?? (existsSync("bindings.conf") ? "bindings.conf" : undefined);
if (!file || process.argv.length > 4) {
  process.stderr.write("usage: npm run -s secrets-env -- <dotenv file of skill secrets> [bindings file]  (prints SECRETS_JSON=<base64>)\n");
  process.exit(1);
}
try {
  const { store, warnings } = loadSecrets({ secretsFile: file, bindingsFile, refuseShared: true });
  for (const w of warnings) process.stderr.write(`secrets-env: ${w}\n`);
  const doc = Object.fromEntries(
    [...store.valuesFor(store.names())].map(([name, value]) => [name, { value, bind: bindingText(store.binding(name)!) }]),
  );
  process.stdout.write(`SECRETS_JSON=${Buffer.from(JSON.stringify(doc)).toString("base64")}\n`);
  process.stderr.write(`secrets-env: ${store.size} secret(s): ${store.names().join(", ")}\n`);
} catch (err) {
  process.stderr.write(`secrets-env: ${(err as Error).message}\n`);
  process.exit(1);
}
