import canonicalize from "canonicalize";

/**
 * The signing and hashing format: RFC 8785, the JSON Canonicalization Scheme (JCS), as the
 * `canonicalize` package implements it: object keys sorted by UTF-16 code units, numbers as
 * ECMAScript prints them, strings as JSON.stringify escapes them, no whitespace.
 *
 * Only plain JSON data may be signed: anything JSON would silently change (undefined in an array
 * becomes null, a Date its toJSON string, a Map `{}`), a non-finite number, a bigint, a function,
 * a symbol or a lone surrogate is refused with an error naming where it is, never signed as
 * something else. (`undefined` object members are left out, as JSON does: optional fields.)
 */
export function canonicalJson(value: unknown): string {
  assertPlainJson(value, "$");
  const text = canonicalize(value);
  if (text === undefined) throw new TypeError("canonicalJson: nothing to serialise at $");
  return text;
}

function assertPlainJson(value: unknown, path: string): void {
  if (value === null || typeof value === "string" || typeof value === "boolean") return;
  if (typeof value === "number") {
    if (!Number.isFinite(value)) throw new TypeError(`canonicalJson: a non-finite number at ${path}`);
    return;
  }
  if (Array.isArray(value)) {
    value.forEach((item, i) => {
      if (item === undefined) throw new TypeError(`canonicalJson: undefined in an array at ${path}[${i}]`);
      assertPlainJson(item, `${path}[${i}]`);
    });
    return;
  }
  if (typeof value === "object") {
    const proto = Object.getPrototypeOf(value);
    if (proto !== Object.prototype && proto !== null) {
      throw new TypeError(`canonicalJson: a ${value.constructor?.name ?? "non-plain"} object at ${path} (only plain objects are signed)`);
    }
    for (const [key, item] of Object.entries(value)) {
      if (item !== undefined) assertPlainJson(item, `${path}.${key}`);
    }
    return;
  }
  throw new TypeError(`canonicalJson: a ${typeof value} at ${path}`);
}

/**
 * Format 1 of the audit chain (entries without `v`), kept only to verify chains written before
 * format 2: sorted keys, JSON.stringify for everything else. For plain JSON data it gives the same
 * text as RFC 8785; it differs on what format 2 refuses.
 */
export function legacyCanonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(legacyCanonicalJson).join(",")}]`;
  if (value && typeof value === "object") {
    const entries = Object.entries(value as Record<string, unknown>)
      .filter(([, v]) => v !== undefined)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${legacyCanonicalJson(v)}`).join(",")}}`;
  }
  return JSON.stringify(value);
}
