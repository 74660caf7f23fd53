import { lookup as dnsLookup, type LookupAddress } from "node:dns";
import * as http from "node:http";
import * as https from "node:https";
import { isIP, type LookupFunction } from "node:net";
import { isPublicAddress } from "@oauth3/shared";
import { GatewayError } from "../errors.js";

export interface SkillFetchOptions {
  timeoutMs: number;
  maxBytes: number;
  /** "host:port" pairs an operator allowed despite resolving to private addresses (http too). */
  allowPrivate: ReadonlySet<string>;
}

export interface FetchedSkill {
  bytes: Buffer;
  /** What to store and show for where the code came from (a data: URL is not stored twice). */
  source: string;
}

const MAX_REDIRECTS = 3;

/**
 * Fetches a skill's code exactly once. Only `data:` and `https:` URLs; every hop's address is
 * resolved, checked (no loopback, private, link-local, CGNAT... unless the operator named that
 * host:port) and pinned for the connection, so DNS cannot switch it between check and use. Time and
 * size are capped; redirects are followed at most three times, each re-checked.
 */
export async function fetchSkill(rawUrl: string, options: SkillFetchOptions): Promise<FetchedSkill> {
  let url: URL;
  try {
    url = new URL(rawUrl);
  } catch {
    throw new GatewayError("invalid", "invalid_skill_url", "skill_url is not a valid URL");
  }
  if (url.protocol === "data:") return { bytes: await decodeDataUrl(rawUrl, options.maxBytes), source: "data:" };

  const deadline = AbortSignal.timeout(options.timeoutMs);
  for (let hop = 0; hop <= MAX_REDIRECTS; hop++) {
    const response = await requestOnce(url, options, deadline);
    if (response.redirect) {
      url = new URL(response.redirect, url);
      continue;
    }
    return { bytes: response.body!, source: rawUrl.slice(0, 2048) };
  }
  throw new GatewayError("invalid", "skill_fetch_failed", "Failed to fetch skill code: too many redirects");
}

async function decodeDataUrl(rawUrl: string, maxBytes: number): Promise<Buffer> {
  // The encoded form bounds the decoded size from above (base64 3/4, percent-encoding 1/3).
  if (rawUrl.length > maxBytes * 3 + 1024) throw tooLarge(maxBytes);
  let bytes: Buffer;
  let mime: string;
  try {
    const res = await fetch(rawUrl); // WHATWG data: URL processing
    mime = res.headers.get("content-type") ?? "";
    bytes = Buffer.from(await res.arrayBuffer());
  } catch {
    throw new GatewayError("invalid", "invalid_skill_url", "skill_url is not a valid data: URL");
  }
  // The bytes are stored, hashed, shown and run as UTF-8: another charset would show one text and
  // hash another (UTF-16 bytes read as UTF-8). Refuse it rather than guess.
  const charset = /;\s*charset=("?)([^";]*)\1/i.exec(mime)?.[2]?.trim().toLowerCase();
  if (charset !== undefined && !["utf-8", "utf8", "us-ascii", "ascii"].includes(charset)) {
    throw new GatewayError(
      "invalid",
      "invalid_skill_url",
      `a data: skill_url must be UTF-8 (or US-ASCII) text; this one says charset=${charset.slice(0, 40)}`,
    );
  }
  if (bytes.length > maxBytes) throw tooLarge(maxBytes);
  return bytes;
}

interface HopResult {
  body?: Buffer;
  redirect?: string;
}

function requestOnce(url: URL, options: SkillFetchOptions, signal: AbortSignal): Promise<HopResult> {
  const port = url.port ? Number(url.port) : url.protocol === "https:" ? 443 : 80;
  const hostname = url.hostname.replace(/^\[|\]$/g, "").toLowerCase();
  const hostKey = `${url.hostname.toLowerCase()}:${port}`;
  const privateAllowed = options.allowPrivate.has(hostKey);
  if (url.protocol !== "https:" && !(url.protocol === "http:" && privateAllowed)) {
    throw new GatewayError("invalid", "invalid_skill_url", "skill_url must be https: or data:");
  }
  if (url.username || url.password) {
    throw new GatewayError("invalid", "invalid_skill_url", "skill_url must not carry credentials");
  }
  const checkAddress = (address: string) => {
    if (!privateAllowed && !isPublicAddress(address)) {
      throw new GatewayError(
        "invalid",
        "skill_fetch_forbidden",
        `Failed to fetch skill code: ${url.hostname} resolves to a non-public address`,
      );
    }
  };
  if (isIP(hostname)) checkAddress(hostname);

  // Resolve, check, and hand exactly the checked address to the socket.
  const pinnedLookup: LookupFunction = (host, opts, callback) => {
    dnsLookup(host, { ...opts, all: true }, (err, addresses) => {
      if (err) return callback(err, "", 0);
      const list = addresses as LookupAddress[];
      try {
        if (list.length === 0) throw new Error("no address");
        for (const a of list) checkAddress(a.address);
      } catch (e) {
        return callback(e as NodeJS.ErrnoException, "", 0);
      }
      if ((opts as { all?: boolean }).all) return (callback as unknown as (e: null, a: LookupAddress[]) => void)(null, list);
      return callback(null, list[0]!.address, list[0]!.family);
    });
  };

  const client = url.protocol === "https:" ? https : http;
  return new Promise<HopResult>((resolve, reject) => {
    const req = client.request(
      url,
      { method: "GET", lookup: pinnedLookup, signal, headers: { "user-agent": "oauth3-proxy", accept: "*/*" } },
      (res) => {
        const status = res.statusCode ?? 0;
        if (status >= 300 && status < 400 && res.headers.location) {
          res.resume();
          return resolve({ redirect: res.headers.location });
        }
        if (status !== 200) {
          res.resume();
          return reject(new GatewayError("invalid", "skill_fetch_failed", `Failed to fetch skill code: HTTP ${status}`));
        }
        const declared = Number(res.headers["content-length"] ?? 0);
        if (declared > options.maxBytes) {
          res.destroy();
          return reject(tooLarge(options.maxBytes));
        }
        const chunks: Buffer[] = [];
        let size = 0;
        res.on("data", (chunk: Buffer) => {
          size += chunk.length;
          if (size > options.maxBytes) {
            res.destroy();
            reject(tooLarge(options.maxBytes));
            return;
          }
          chunks.push(chunk);
        });
        res.on("end", () => resolve({ body: Buffer.concat(chunks) }));
        res.on("error", (err) => reject(fetchFailed(err)));
      },
    );
    req.on("error", (err) => reject(err instanceof GatewayError ? err : fetchFailed(err)));
    req.end();
  });
}

function fetchFailed(err: Error): GatewayError {
  if (err instanceof GatewayError) return err;
  const reason = err.name === "AbortError" || err.name === "TimeoutError" ? "timed out" : err.message;
  return new GatewayError("invalid", "skill_fetch_failed", `Failed to fetch skill code: ${reason}`);
}

function tooLarge(maxBytes: number): GatewayError {
  return new GatewayError("too_large", "skill_too_large", `skill code exceeds ${maxBytes} bytes`);
}
