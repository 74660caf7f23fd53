import ipaddr from "ipaddr.js";

/**
 * True only for globally routable unicast addresses. Loopback, private, link-local (cloud metadata
 * 169.254.169.254), CGNAT, multicast, unspecified, reserved, unique-local IPv6, and IPv4-mapped or
 * -translated forms of any of those are refused. So is all of `::/96` (the deprecated
 * IPv4-compatible form, RFC 4291 2.5.5.1: `::7f00:1` is 127.0.0.1 to some stacks, and ipaddr.js
 * calls it unicast).
 */
export function isPublicAddress(address: string): boolean {
  const text = canonical(address);
  if (text === undefined || !ipaddr.isValid(text)) return false;
  let parsed = ipaddr.parse(text);
  if (parsed.kind() === "ipv6") {
    const v6 = parsed as ipaddr.IPv6;
    if (v6.parts.slice(0, 6).every((part) => part === 0)) return false;
    if (v6.isIPv4MappedAddress()) parsed = v6.toIPv4Address();
    else if (v6.range() !== "unicast") return false;
  }
  return parsed.range() === "unicast";
}

/**
 * IPv6 text in the WHATWG/RFC 5952 form the socket layer means by it. ipaddr.js 2.5 reads
 * `::8.8.8.8` as `::ffff:8.8.8.8` (mapped) where every OS reads `::808:808` (IPv4-compatible), so
 * an address is judged only in its canonical hex form. Zoned or otherwise odd text is refused.
 */
function canonical(address: string): string | undefined {
  if (!address.includes(":")) return address;
  try {
    const host = new URL(`http://[${address}]/`).hostname;
    return host.slice(1, -1);
  } catch {
    return undefined;
  }
}
