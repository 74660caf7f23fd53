import "reflect-metadata"; // @peculiar/x509 (its tsyringe container) needs the Reflect metadata API
import { randomBytes, webcrypto } from "node:crypto";
import { createSecureContext, type SecureContext } from "node:tls";
import * as x509 from "@peculiar/x509";

x509.cryptoProvider.set(webcrypto as unknown as Parameters<typeof x509.cryptoProvider.set>[0]);

type CryptoKeyPair = webcrypto.CryptoKeyPair;

const ALG = { name: "ECDSA", namedCurve: "P-256", hash: "SHA-256" } as const;
const HOUR = 3600_000;

/**
 * The runner's egress CA: made at start-up, its private key a non-extractable WebCrypto key in the
 * runner's memory (never on disk, never in a skill's reach). Skills trust its certificate
 * (DENO_CERT); the egress proxy presents a leaf for each bound or allowed host it intercepts, so it
 * sees what a skill sends there and can put a secret in. Nothing else trusts it.
 */
export class EgressCa {
  private readonly leaves = new Map<string, Promise<SecureContext>>();

  private constructor(
    private readonly keys: CryptoKeyPair,
    private readonly cert: x509.X509Certificate,
  ) {}

  static async create(): Promise<EgressCa> {
    const keys = (await webcrypto.subtle.generateKey(ALG, false, ["sign", "verify"])) as CryptoKeyPair;
    const now = Date.now();
    const cert = await x509.X509CertificateGenerator.createSelfSigned({
      serialNumber: randomBytes(16)
        .toString("hex")
        .replace(/^[89a-f]/, "1"),
      name: `CN=oauth3-proxy vault-runner egress CA ${randomBytes(4).toString("hex")}`,
      notBefore: new Date(now - HOUR),
      notAfter: new Date(now + 365 * 24 * HOUR),
      signingAlgorithm: ALG,
      keys,
      extensions: [
        new x509.BasicConstraintsExtension(true, 0, true),
        new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
        await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
      ],
    });
    return new EgressCa(keys, cert);
  }

  /** The CA certificate (PEM), for the skills' DENO_CERT bundle. */
  get certPem(): string {
    return this.cert.toString("pem");
  }

  /** A TLS server context for `host` (a leaf signed by this CA; made once per host and kept). */
  contextFor(host: string): Promise<SecureContext> {
    let ctx = this.leaves.get(host);
    if (!ctx) {
      ctx = this.makeLeaf(host);
      this.leaves.set(host, ctx);
      ctx.catch(() => this.leaves.delete(host));
    }
    return ctx;
  }

  private async makeLeaf(host: string): Promise<SecureContext> {
    const keys = (await webcrypto.subtle.generateKey(ALG, true, ["sign", "verify"])) as CryptoKeyPair;
    const now = Date.now();
    const leaf = await x509.X509CertificateGenerator.create({
      serialNumber: randomBytes(16)
        .toString("hex")
        .replace(/^[89a-f]/, "1"),
      subject: `CN=${host}`,
      issuer: this.cert.subject,
      notBefore: new Date(now - HOUR),
      notAfter: new Date(now + 7 * 24 * HOUR),
      signingAlgorithm: ALG,
      publicKey: keys.publicKey,
      signingKey: this.keys.privateKey,
      extensions: [
        new x509.BasicConstraintsExtension(false, undefined, true),
        new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
        new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth]),
        new x509.SubjectAlternativeNameExtension([{ type: "dns", value: host }]),
        await x509.AuthorityKeyIdentifierExtension.create(this.cert, false),
      ],
    });
    const pkcs8 = Buffer.from(await webcrypto.subtle.exportKey("pkcs8", keys.privateKey)).toString("base64");
    const keyPem = `-----BEGIN PRIVATE KEY-----\n${pkcs8.match(/.{1,64}/g)!.join("\n")}\n-----END PRIVATE KEY-----\n`;
    return createSecureContext({ key: keyPem, cert: `${leaf.toString("pem")}\n${this.certPem}` });
  }
}
