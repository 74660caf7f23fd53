import type { Server } from "node:net";

/**
 * Starts `server` on a TCP port (`{ port, host }`) or a Unix socket (`{ path }`) and resolves once it
 * listens; rejects with the listen error (EADDRINUSE, EACCES) instead of leaving it unhandled.
 */
export function listen<S extends Server>(server: S, at: { port: number; host: string } | { path: string }): Promise<S> {
  return new Promise((resolve, reject) => {
    const fail = (err: Error) => reject(err);
    server.once("error", fail);
    const ready = () => {
      server.off("error", fail);
      resolve(server);
    };
    if ("path" in at) server.listen({ path: at.path }, ready);
    else server.listen(at.port, at.host, ready);
  });
}
