import { createHash } from "node:crypto";

export function sha256Hex(bytes: Uint8Array): string {
  return createHash("sha256").update(bytes).digest("hex");
}

/**
 * The digest of a run's output as receipts and the audit chain record it: SHA-256 of the redacted
 * stdout, a NUL, then the redacted stderr. The runner signs it; the gateway records it; the
 * verifier compares the two, so both sides use this one definition.
 */
export function outputDigest(stdout: string, stderr: string): string {
  return createHash("sha256").update(stdout).update("\0").update(stderr).digest("hex");
}
