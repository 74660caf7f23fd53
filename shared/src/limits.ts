/** Limits both processes agree on. The runner enforces them regardless of what the gateway did. */
/**
 * Sized so that an approval card's critical lines (every secret with room for its bindings, every
 * host:port, skill id, agent, hashes, warnings) always fit one Telegram message with its outcome
 * footer: real skills use one to three secrets and hosts, and API host names are short.
 */
export const LIMITS = {
  maxCodeBytes: 256 * 1024,
  maxSecrets: 8,
  maxHosts: 8,
  /** A normalised "host:port", punycode included. */
  maxHostLength: 100,
  maxAgentNameLength: 64,
  maxArgs: 32,
  maxArgValueBytes: 8 * 1024,
  maxArgsTotalBytes: 64 * 1024,
  maxSkillIdLength: 64,
  maxDescriptionLength: 1024,
  defaultTimeoutSeconds: 30,
  /** Hard ceiling: no configuration can raise a skill's timeout above this. */
  hardMaxTimeoutSeconds: 3600,
} as const;

export const REQUEST_ID_PATTERN = /^exec_[0-9a-f]{16}$/;
export const SHA256_HEX_PATTERN = /^[0-9a-f]{64}$/;
