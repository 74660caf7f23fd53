import { createPrivateKey, generateKeyPairSync, sign, type KeyObject } from "node:crypto";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { canonicalJson } from "./canonical-json.js";
import { ed25519PrivateKeyFromSeed, ed25519RawPublicKey } from "./ed25519.js";

/**
 * An Ed25519 signing key: the runner's receipt key and the gateway's checkpoint key. In a dstack CVM
 * the runner's is derived from the app's key through the guest agent (fromSeed, never written to
 * disk); otherwise a key is generated on first start and kept 0600 on the process's own volume.
 * Signatures are over canonical JSON, verified with verifyReceipt (raw public key in hex).
 */
export class SigningKey {
  private constructor(
    private readonly key: KeyObject,
    readonly publicKeyHex: string,
    readonly source: "dstack" | "local",
  ) {}

  static fromSeed(seed: Buffer): SigningKey {
    if (seed.length !== 32) throw new Error("an Ed25519 seed is 32 bytes");
    return SigningKey.fromKey(ed25519PrivateKeyFromSeed(seed), "dstack");
  }

  static loadOrCreate(path: string): SigningKey {
    if (!existsSync(path)) {
      const { privateKey } = generateKeyPairSync("ed25519");
      writeFileSync(path, privateKey.export({ type: "pkcs8", format: "pem" }), { mode: 0o600, flag: "wx" });
    }
    return SigningKey.fromPem(readFileSync(path, "utf8"));
  }

  static ephemeral(): SigningKey {
    const { privateKey } = generateKeyPairSync("ed25519");
    return SigningKey.fromPem(privateKey.export({ type: "pkcs8", format: "pem" }).toString());
  }

  private static fromPem(pem: string): SigningKey {
    return SigningKey.fromKey(createPrivateKey(pem), "local");
  }

  private static fromKey(key: KeyObject, source: "dstack" | "local"): SigningKey {
    return new SigningKey(key, ed25519RawPublicKey(key).toString("hex"), source);
  }

  sign(payload: object): { payloadJson: string; signature: Buffer } {
    const payloadJson = canonicalJson(payload);
    return { payloadJson, signature: sign(null, Buffer.from(payloadJson, "utf8"), this.key) };
  }
}
