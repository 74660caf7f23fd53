import { chmodSync, lstatSync, mkdirSync, unlinkSync } from "node:fs";
import { connect } from "node:net";
import { dirname } from "node:path";

/**
 * Prepares a Unix socket path for listening: its directory exists with exactly `dirMode` and is
 * owned by this process's uid; a stale socket (nobody listening) is removed; a live one means another
 * instance is running, which stops this start. The only module in shared/ that touches the file
 * system, kept here so both processes guard their sockets the same way.
 */
export async function prepareSocketPath(socketPath: string, dirMode: number): Promise<void> {
  const dir = dirname(socketPath);
  mkdirSync(dir, { recursive: true, mode: dirMode });
  const dirStat = lstatSync(dir);
  if (!dirStat.isDirectory()) throw new Error(`${dir} is not a directory`);
  if (typeof process.getuid === "function" && dirStat.uid !== process.getuid()) {
    throw new Error(`socket directory ${dir} is owned by uid ${dirStat.uid}, not by this process`);
  }
  chmodSync(dir, dirMode);

  let existing: ReturnType<typeof lstatSync> | undefined;
  try {
    existing = lstatSync(socketPath);
  } catch {
    return; // nothing there
  }
  if (!existing.isSocket()) throw new Error(`${socketPath} exists and is not a socket`);
  if (await isListening(socketPath)) throw new Error(`another process is already serving ${socketPath}`);
  unlinkSync(socketPath); // stale: left by a process that did not shut down cleanly
}

function isListening(socketPath: string): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ path: socketPath });
    socket.once("connect", () => {
      socket.destroy();
      resolve(true);
    });
    socket.once("error", () => resolve(false));
  });
}
