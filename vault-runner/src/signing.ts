import { createPrivateKey, createPublicKey, generateKeyPairSync, sign, type KeyObject } from "node:crypto";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { canonicalJson, type ReceiptPayload } from "@oauth3/shared";

/**
 * The runner's signing key (Ed25519). Generated on first start and kept 0600 in the runner's own
 * state directory, which the gateway cannot read. (In a dstack CVM it is planned to come from the
 * guest agent's GetKey instead, bound to the app's identity.)
 */
export class ReceiptSigner {
  private constructor(
    private readonly key: KeyObject,
    readonly publicKeyHex: string,
  ) {}

  static loadOrCreate(path: string): ReceiptSigner {
    if (!existsSync(path)) {
      const { privateKey } = generateKeyPairSync("ed25519");
      writeFileSync(path, privateKey.export({ type: "pkcs8", format: "pem" }), { mode: 0o600, flag: "wx" });
    }
    return ReceiptSigner.fromPem(readFileSync(path, "utf8"));
  }

  static ephemeral(): ReceiptSigner {
    const { privateKey } = generateKeyPairSync("ed25519");
    return ReceiptSigner.fromPem(privateKey.export({ type: "pkcs8", format: "pem" }).toString());
  }

  private static fromPem(pem: string): ReceiptSigner {
    const key = createPrivateKey(pem);
    const raw = createPublicKey(key).export({ type: "spki", format: "der" }).subarray(-32);
    return new ReceiptSigner(key, Buffer.from(raw).toString("hex"));
  }

  sign(payload: ReceiptPayload): { payloadJson: string; signature: Buffer } {
    const payloadJson = canonicalJson(payload);
    return { payloadJson, signature: sign(null, Buffer.from(payloadJson, "utf8"), this.key) };
  }
}
