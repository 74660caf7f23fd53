import type { MiddlewareHandler } from "hono";
import { GatewayError } from "../errors.js";

/**
 * Only agents, not web pages, may use the agent and audit listeners. A page someone on the machine
 * opens can send requests to 127.0.0.1 without a CORS preflight (a "simple" POST with text/plain),
 * and a DNS-rebinding page can even read the answers (its own name resolves to 127.0.0.1). Browsers
 * mark such requests, agents and curl do not:
 *  - `Host` must be a name this gateway serves (localhost, 127.0.0.1, [::1], oauth3-proxy, gateway,
 *    plus ALLOWED_HOSTS): a rebinding page's Host is its own name;
 *  - an `Origin` header (any, including `null`) must be one of ALLOWED_ORIGINS (none by default);
 *  - `Sec-Fetch-Site: cross-site` or `same-site` is refused (`same-origin`, `none` and absent pass).
 * Node's fetch (`sec-fetch-mode: cors`, no Origin), curl and the oauth3 CLI send none of those.
 * POST bodies must also be `application/json` (readBody): a form or text/plain is 415.
 */
export const DEFAULT_HOSTNAMES = ["localhost", "127.0.0.1", "[::1]", "oauth3-proxy", "gateway"] as const;

export interface BrowserGuardOptions {
  /** Lower-case host names without port; IPv6 in brackets. */
  hostnames: ReadonlySet<string>;
  origins: ReadonlySet<string>;
}

export function defaultBrowserGuard(extraHosts: readonly string[] = [], origins: readonly string[] = []): BrowserGuardOptions {
  return {
    hostnames: new Set([...DEFAULT_HOSTNAMES, ...extraHosts.map((h) => h.toLowerCase())]),
    origins: new Set(origins),
  };
}

/** `Host` without its port, lower-case; IPv6 keeps its brackets. */
export function hostnameOf(host: string): string {
  const h = host.trim().toLowerCase();
  if (h.startsWith("[")) return h.slice(0, h.indexOf("]") + 1);
  const colon = h.lastIndexOf(":");
  return colon === -1 ? h : h.slice(0, colon);
}

/** Told of each refusal (the operator's log: a page on this machine tried to use the gateway). */
export type RefusalLog = (fields: { code: string; method: string; path: string; host: string; origin?: string }) => void;

export function browserGuard(options: BrowserGuardOptions, log?: RefusalLog): MiddlewareHandler {
  return async (c, next) => {
    const host = c.req.header("host") ?? new URL(c.req.url).host;
    const origin = c.req.header("origin");
    const refuse = (code: string, message: string) => {
      log?.({
        code,
        method: c.req.method,
        path: c.req.path.slice(0, 100),
        host: host.slice(0, 100),
        ...(origin !== undefined && { origin: origin.slice(0, 100) }),
      });
      return new GatewayError("forbidden", code, message);
    };
    if (!options.hostnames.has(hostnameOf(host))) {
      throw refuse(
        "forbidden_host",
        `Host ${JSON.stringify(host.slice(0, 100))} is not a name this gateway serves (add it to ALLOWED_HOSTS if agents use it)`,
      );
    }
    if (origin !== undefined && !options.origins.has(origin)) {
      throw refuse(
        "forbidden_origin",
        "requests from web pages are refused (Origin header); agents and the CLI send none. Allow an origin with ALLOWED_ORIGINS",
      );
    }
    const site = c.req.header("sec-fetch-site")?.toLowerCase();
    if (site === "cross-site" || site === "same-site") {
      throw refuse("forbidden_site", `requests from other sites are refused (Sec-Fetch-Site: ${site})`);
    }
    await next();
  };
}
