export { LIMITS, REQUEST_ID_PATTERN, SHA256_HEX_PATTERN } from "./limits.js";
export { PolicyError } from "./policy-error.js";
export { checkArgName, checkSecretName, isReservedEnvName, describe } from "./names.js";
export { normalizeHost } from "./hosts.js";
export { parseSkillHeader, type SkillHeader } from "./skill-header.js";
export { resolveRunSpec, type RunSpec, type RunSpecInput } from "./run-spec.js";
export { isPublicAddress } from "./addresses.js";
export { outputDigest, sha256Hex } from "./sha256.js";
export { AUDIT_FORMAT, auditHash, GENESIS, verifyAuditChain, type AuditEvent, type ChainVerdict } from "./audit-chain.js";
export { bindingsDigest, type SecretBindingSummary } from "./bindings-digest.js";
export { canonicalJson, legacyCanonicalJson } from "./canonical-json.js";
export { verifyReceipt, verifyRunReceipts, type ReceiptPayload } from "./receipts.js";
export {
  ATTESTATION_DOMAIN,
  HEX32_PATTERN,
  NONCE_PATTERN,
  policyDigest,
  replayRtmr3,
  reportDataFor,
  tdxReportData,
  type AttestationStatement,
} from "./attestation.js";
export { escapeCodePoint, sanitize, sanitizeJson, type Sanitized } from "./sanitize.js";
export {
  approvalStatement,
  formatUtc,
  renderStatementText,
  STRONG_SANDBOX_LINE,
  type ApprovalStatement,
  type StatementSource,
} from "./approval-statement.js";
export { retry } from "./retry.js";
export { hashToken, newAgentToken } from "./tokens.js";
export { commaList, DEFAULT_PATHS, envInt, envKeys, LOG_LEVEL, parseEnv } from "./env-config.js";
export { DENO_BASE_FLAGS } from "./deno-flags.js";
