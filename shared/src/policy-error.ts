/**
 * A rule violation in agent- or gateway-supplied data. `code` is stable (API clients and tests match
 * on it); `message` is for humans and never contains a secret value.
 */
export class PolicyError extends Error {
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(message);
    this.name = "PolicyError";
  }
}
