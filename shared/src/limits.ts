/** Limits both processes agree on. The runner enforces them regardless of what the gateway did. */
export const LIMITS = {
  maxCodeBytes: 256 * 1024,
  maxSecrets: 32,
  maxHosts: 16,
  maxArgs: 32,
  maxArgValueBytes: 8 * 1024,
  maxArgsTotalBytes: 64 * 1024,
  maxSkillIdLength: 128,
  maxDescriptionLength: 1024,
  defaultTimeoutSeconds: 30,
  /** Hard ceiling: no configuration can raise a skill's timeout above this. */
  hardMaxTimeoutSeconds: 3600,
} as const;

export const REQUEST_ID_PATTERN = /^exec_[0-9a-f]{16}$/;
export const SHA256_HEX_PATTERN = /^[0-9a-f]{64}$/;
