import { domainToASCII } from "node:url";
import { isIP } from "node:net";
import { PolicyError } from "./policy-error.js";
import { describe } from "./names.js";
import { LIMITS } from "./limits.js";

const LABEL = /^(?!-)[a-z0-9-]{1,63}(?<!-)$/;
const HOST_AND_PORT = /^([^:]+)(?::(\d{1,5}))?$/;

/**
 * Normalises one declared network destination to "host:port" (port always explicit, 443 by
 * default; Deno's host-only --allow-net would open every port). Accepts public DNS names only:
 * at least two labels, punycode for IDN. Refuses IP literals, localhost, single labels (compose
 * service names such as `gateway`), wildcards, commas (Deno joins hosts with commas), schemes such as
 * unix:/vsock:, userinfo, paths and empty strings.
 */
export function normalizeHost(input: unknown): string {
  if (typeof input !== "string" || input.length === 0 || input.length > 260) {
    throw invalid(input, "must be a non-empty host name");
  }
  const trimmed = input.trim();
  if (/[\s,/@*\\?#[\]]/.test(trimmed) || /^[a-z][a-z0-9+.-]*:\/\//i.test(trimmed)) {
    throw invalid(input, "must be a bare host[:port], without scheme, path, userinfo, comma or wildcard");
  }
  const match = HOST_AND_PORT.exec(trimmed);
  if (!match) throw invalid(input, "must be host or host:port");
  const [, rawHost, rawPort] = match as unknown as [string, string, string | undefined];
  if (isIP(rawHost)) throw invalid(input, "IP literals are not allowed; declare a DNS name");
  const ascii = domainToASCII(rawHost.toLowerCase().replace(/\.$/, ""));
  if (!ascii) throw invalid(input, "is not a valid domain name");
  const labels = ascii.split(".");
  if (labels.length < 2 || !labels.every((l) => LABEL.test(l))) {
    throw invalid(input, "must be a public DNS name with at least one dot");
  }
  if (/^\d+$/.test(labels[labels.length - 1]!)) {
    throw invalid(input, "numeric top-level labels are not allowed");
  }
  if (labels[labels.length - 1] === "localhost" || ascii === "localhost") {
    throw invalid(input, "localhost is not allowed");
  }
  const port = rawPort === undefined ? 443 : Number(rawPort);
  if (!Number.isInteger(port) || port < 1 || port > 65535) throw invalid(input, "port out of range");
  const normalized = `${ascii}:${port}`;
  if (normalized.length > LIMITS.maxHostLength) {
    throw invalid(input, `is longer than ${LIMITS.maxHostLength} characters as host:port (punycode)`);
  }
  return normalized;
}

function invalid(input: unknown, why: string): PolicyError {
  return new PolicyError("invalid_host", `network host ${describe(input)} ${why}`);
}
