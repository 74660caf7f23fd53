import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { X509Certificate } from "node:crypto";
import { readdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";

/**
 * A test CA (openssl) and one leaf for `names`, in `dir`: fake remote APIs serve the leaf, and the
 * runner trusts the CA through RUNNER_EXTRA_CA_FILE as an operator behind a TLS-inspecting network would.
 */
export function makeTestCerts(dir: string, names: readonly string[]): { ca: string; key: string; cert: string } {
  const run = (args: string[]) => {
    const r = spawnSync("openssl", args, { cwd: dir, encoding: "utf8" });
    if (r.status !== 0) throw new Error(`openssl ${args[0]}: ${r.stderr}`);
  };
  run([
    ...["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.pem", "-days", "2"],
    ...["-subj", "/CN=oauth3 test CA", "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign"],
  ]);
  run(["req", "-newkey", "rsa:2048", "-nodes", "-keyout", "leaf.key", "-out", "leaf.csr", "-subj", `/CN=${names[0]}`]);
  writeFileSync(join(dir, "ext.cnf"), `subjectAltName=${names.map((n) => `DNS:${n}`).join(",")}\nextendedKeyUsage=serverAuth\n`);
  run([
    "x509",
    "-req",
    "-in",
    "leaf.csr",
    "-CA",
    "ca.pem",
    "-CAkey",
    "ca.key",
    "-CAcreateserial",
    "-out",
    "leaf.pem",
    "-days",
    "2",
    "-extfile",
    "ext.cnf",
  ]);
  return { ca: join(dir, "ca.pem"), key: readFileSync(join(dir, "leaf.key"), "utf8"), cert: readFileSync(join(dir, "leaf.pem"), "utf8") };
}

/** DER of the OID id-ecPublicKey (1.2.840.10045.2.1): in every PKCS#8 or SEC1 EC private key. */
const EC_KEY_OID = Buffer.from("06072a8648ce3d0201", "hex");

/**
 * The runner's egress CA as an operator can check it from outside: the skills' bundle
 * (skill-ca.pem in the runner's work directory, named by its state directory) is 0644 and holds
 * only certificates, among them the runner's own CA; and no EC private key (the CA's is P-256) is
 * on disk anywhere the runner writes (its state directory, its work directory).
 */
export function assertCaCustody(stateDir: string): void {
  const [workDir] = JSON.parse(readFileSync(join(stateDir, "work-dirs.json"), "utf8")) as string[];
  const bundle = join(workDir!, "skill-ca.pem");
  assert.equal(statSync(bundle).mode & 0o777, 0o644, "skill uids can read the bundle, no one else can write it");
  const text = readFileSync(bundle, "utf8");
  assert.ok(!text.includes("PRIVATE KEY"), "the bundle holds no key");
  const certs = text.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? [];
  const runnerCa = certs
    .map((c) => new X509Certificate(c))
    .filter((c) => c.ca && c.subject.includes("oauth3-proxy vault-runner egress CA"));
  assert.equal(runnerCa.length, 1, "the runner's CA is in the bundle");
  assert.equal(runnerCa[0]!.publicKey.asymmetricKeyDetails?.namedCurve, "prime256v1");
  // A finished run's directory may still be being removed while this walks: what is gone is skipped.
  const gone = (err: unknown) => (err as NodeJS.ErrnoException).code === "ENOENT";
  const walk = (dir: string): string[] => {
    try {
      return readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
        e.isDirectory() ? walk(join(dir, e.name)) : e.isFile() ? [join(dir, e.name)] : [],
      );
    } catch (err) {
      if (gone(err)) return [];
      throw err;
    }
  };
  for (const file of [...walk(stateDir), ...walk(workDir!)]) {
    let body: Buffer;
    try {
      body = readFileSync(file);
    } catch (err) {
      if (gone(err)) continue;
      throw err;
    }
    assert.ok(!body.includes(EC_KEY_OID), `${file} holds no EC key in DER`);
    for (const pem of body.toString("latin1").match(/-----BEGIN [A-Z ]*PRIVATE KEY-----[\s\S]+?-----END [A-Z ]*PRIVATE KEY-----/g) ?? []) {
      const der = Buffer.from(pem.replace(/-----[^-]+-----/g, "").replace(/\s+/g, ""), "base64");
      assert.ok(!der.includes(EC_KEY_OID) && !pem.includes("EC PRIVATE KEY"), `${file} holds an EC private key`);
    }
  }
}
