import ipaddr from "ipaddr.js";

/**
 * True only for globally routable unicast addresses. Loopback, private, link-local (cloud metadata
 * 169.254.169.254), CGNAT, multicast, unspecified, reserved, unique-local IPv6, and IPv4-mapped or
 * -translated forms of any of those are refused.
 */
export function isPublicAddress(address: string): boolean {
  if (!ipaddr.isValid(address)) return false;
  let parsed = ipaddr.parse(address);
  if (parsed.kind() === "ipv6") {
    const v6 = parsed as ipaddr.IPv6;
    if (v6.isIPv4MappedAddress()) parsed = v6.toIPv4Address();
    else if (v6.range() !== "unicast") return false;
  }
  return parsed.range() === "unicast";
}
