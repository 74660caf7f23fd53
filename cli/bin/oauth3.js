#!/usr/bin/env node
// The operator CLI in a checkout: runs the TypeScript source through tsx (a dependency of this workspace). The
// gateway image has no tsx: it runs the same program as a bundle, /usr/local/bin/oauth3.
import { register } from "tsx/esm/api";
import { fileURLToPath } from "node:url";
register();
await import(fileURLToPath(new URL("../src/main.ts", import.meta.url)));
