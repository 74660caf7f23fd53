import { chmodSync } from "node:fs";
import type { Server } from "node:http";
import { createAdaptorServer } from "@hono/node-server";
import { listen } from "@oauth3/shared/listen";
import { prepareSocketPath } from "@oauth3/shared/unix-socket";

type FetchApp = { fetch: (req: Request) => Response | Promise<Response> };

/**
 * Serves a hono app on a TCP port, resolving once it listens. Node closes an idle keep-alive
 * connection after 5 s; a client that was busy for about that long (an agent between polls, a
 * CLI-driven test) then reuses a socket the server is closing and gets "other side closed". 30 s
 * (announced in the Keep-Alive header, which fetch/undici honour) leaves clients the decision;
 * headersTimeout must stay above it. `maxConnections`: beyond it new sockets are closed at once.
 */
export function serveTcp(app: FetchApp, port: number, host: string, options: { maxConnections?: number } = {}): Promise<Server> {
  const server = createAdaptorServer({ fetch: app.fetch }) as Server;
  server.keepAliveTimeout = 30_000;
  server.headersTimeout = 35_000;
  if (options.maxConnections !== undefined) server.maxConnections = options.maxConnections;
  return listen(server, { port, host });
}

/** Serves a hono app on a Unix socket (0600) in a 0700 directory: only this user can connect. */
export async function serveUnixSocket(app: FetchApp, socketPath: string): Promise<Server> {
  await prepareSocketPath(socketPath, 0o700);
  const server = await listen(createAdaptorServer({ fetch: app.fetch }) as Server, { path: socketPath });
  chmodSync(socketPath, 0o600);
  return server;
}
