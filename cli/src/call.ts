import { request } from "node:http";

export interface Reply {
  status: number;
  body: Record<string, unknown>;
}

/** Where operator commands go: the operator socket, or (read-only commands) a remote gateway. */
export type Target = string | { url: string; token: string };

export const describeTarget = (t: Target) => (typeof t === "string" ? t : t.url);

export async function call(target: Target, method: string, path: string): Promise<Reply> {
  if (typeof target !== "string") {
    // Remote audit: GET /operator/<path> on the gateway's AUDIT_PORT with an AUDIT_TOKENS token.
    const res = await fetch(`${target.url.replace(/\/+$/, "")}/operator${path}`, {
      method,
      headers: { authorization: `Bearer ${target.token}` },
      signal: AbortSignal.timeout(15_000),
    });
    return { status: res.status, body: (await res.json()) as Record<string, unknown> };
  }
  return new Promise((resolvePromise, reject) => {
    const req = request({ socketPath: target, method, path, timeout: 15_000 }, (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (c: Buffer) => chunks.push(c));
      res.on("end", () => {
        try {
          resolvePromise({ status: res.statusCode ?? 0, body: JSON.parse(Buffer.concat(chunks).toString("utf8")) });
        } catch (err) {
          reject(err);
        }
      });
    });
    req.on("timeout", () => req.destroy(new Error("timed out")));
    req.on("error", reject);
    req.end();
  });
}
