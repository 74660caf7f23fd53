/**
 * The fake dstack guest agent as its own process, for the container test: it serves on a socket in
 * a volume that only the vault-runner container also mounts (at /run/dstack-runner, as a Phala
 * deployment bind-mounts /var/run/dstack.sock there).
 */
import { chmodSync, rmSync } from "node:fs";
import { startFakeDstack } from "../helpers/fake-dstack.ts";

const path = process.env.FAKE_DSTACK_SOCKET ?? "/dstack/dstack.sock";
rmSync(path, { force: true });
chmodSync(path.replace(/\/[^/]+$/, ""), 0o700);
await startFakeDstack(path);
setInterval(() => {}, 1 << 30); // the server is unref'd for in-process tests; keep this process up
console.log("fake dstack ready");
