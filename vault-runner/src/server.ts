import { connect as netConnect } from "node:net";
import { chmodSync, lstatSync, mkdirSync, unlinkSync } from "node:fs";
import { dirname } from "node:path";
import * as http2 from "node:http2";
import type { ConnectRouter } from "@connectrpc/connect";
import { connectNodeAdapter } from "@connectrpc/connect-node";
import { LIMITS } from "@oauth3/shared";

export interface RunnerServerOptions {
  socketPath: string;
  routes: (router: ConnectRouter) => void;
  maxTimeoutSeconds: number;
}

export interface RunnerServer {
  close(): Promise<void>;
}

/** Largest legitimate request: the code plus args and names, with room for framing. */
const READ_MAX_BYTES = LIMITS.maxCodeBytes + LIMITS.maxArgsTotalBytes + 64 * 1024;

/**
 * Serves the runner service on a Unix socket, standard gRPC only (no Connect or gRPC-Web protocol on
 * this socket). The socket's directory is 0750 and the socket 0660: only the runner's user and group
 * (the gateway's, in a deployment) can reach it. A stale socket from a crashed runner is removed; a
 * live one (another runner already serving) stops this start.
 */
export async function startRunnerServer(options: RunnerServerOptions): Promise<RunnerServer> {
  const shutdown = new AbortController();
  await prepareSocketPath(options.socketPath);
  const handler = connectNodeAdapter({
    routes: options.routes,
    grpc: true,
    grpcWeb: false,
    connect: false,
    readMaxBytes: READ_MAX_BYTES,
    writeMaxBytes: 64 * 1024 * 1024,
    maxTimeoutMs: (options.maxTimeoutSeconds + 60) * 1000,
    shutdownSignal: shutdown.signal,
  });
  const server = http2.createServer({ maxSessionMemory: 32 }, handler);
  const sessions = new Set<http2.ServerHttp2Session>();
  server.on("session", (session) => {
    sessions.add(session);
    session.on("close", () => sessions.delete(session));
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen({ path: options.socketPath }, () => {
      server.off("error", reject);
      resolve();
    });
  });
  chmodSync(options.socketPath, 0o660);

  return {
    async close() {
      shutdown.abort();
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      // An HTTP/2 server does not close its sessions by itself.
      for (const session of sessions) session.close();
      await closed;
    },
  };
}

async function prepareSocketPath(socketPath: string): Promise<void> {
  const dir = dirname(socketPath);
  mkdirSync(dir, { recursive: true, mode: 0o750 });
  const dirStat = lstatSync(dir);
  if (!dirStat.isDirectory()) throw new Error(`${dir} is not a directory`);
  if (typeof process.getuid === "function" && dirStat.uid !== process.getuid()) {
    throw new Error(`socket directory ${dir} is owned by uid ${dirStat.uid}, not by the runner`);
  }
  chmodSync(dir, 0o750);

  let existing;
  try {
    existing = lstatSync(socketPath);
  } catch {
    return; // nothing there
  }
  if (!existing.isSocket()) throw new Error(`${socketPath} exists and is not a socket`);
  if (await isListening(socketPath)) {
    throw new Error(`another process is already serving ${socketPath}`);
  }
  unlinkSync(socketPath); // stale, left by a runner that did not shut down cleanly
}

function isListening(socketPath: string): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = netConnect({ path: socketPath });
    socket.once("connect", () => {
      socket.destroy();
      resolve(true);
    });
    socket.once("error", () => resolve(false));
  });
}
