import { createServer, type RequestListener, type Server } from "node:http";

/**
 * An HTTP server on 127.0.0.1 with a free port. Unref'd, so it never keeps a test process alive
 * (and needs no cleanup hook, which would be scoped wrongly when called from `before`).
 */
export async function serveLocal(handler: RequestListener): Promise<{ server: Server; port: number }> {
  const server = createServer(handler);
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", () => r()));
  server.unref();
  return { server, port: (server.address() as { port: number }).port };
}
