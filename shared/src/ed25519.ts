import { createPrivateKey, createPublicKey, type KeyObject } from "node:crypto";

/**
 * Ed25519 keys as the project writes them: a public key is its 32 raw bytes in hex, a private key
 * its 32-byte seed. Node takes DER, which for Ed25519 is a fixed prefix and the raw bytes
 * (RFC 8410): the two prefixes live here only.
 */
const SPKI_PREFIX = Buffer.from("302a300506032b6570032100", "hex");
const PKCS8_PREFIX = Buffer.from("302e020100300506032b657004220420", "hex");

export function ed25519PublicKey(publicKeyHex: string): KeyObject {
  return createPublicKey({ key: Buffer.concat([SPKI_PREFIX, Buffer.from(publicKeyHex, "hex")]), format: "der", type: "spki" });
}

export function ed25519PrivateKeyFromSeed(seed: Buffer): KeyObject {
  return createPrivateKey({ key: Buffer.concat([PKCS8_PREFIX, seed]), format: "der", type: "pkcs8" });
}

/** The 32 raw bytes of a key's public half. */
export function ed25519RawPublicKey(key: KeyObject): Buffer {
  return createPublicKey(key).export({ type: "spki", format: "der" }).subarray(SPKI_PREFIX.length);
}
