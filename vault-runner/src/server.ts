import { chmodSync } from "node:fs";
import { listen } from "@oauth3/shared/listen";
import * as http2 from "node:http2";
import type { ConnectRouter } from "@connectrpc/connect";
import { connectNodeAdapter } from "@connectrpc/connect-node";
import { LIMITS } from "@oauth3/shared";
import { prepareSocketPath } from "@oauth3/shared/unix-socket";

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
  await prepareSocketPath(options.socketPath, 0o750);
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
  await listen(server, { path: options.socketPath });
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
