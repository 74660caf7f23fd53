import type { Logger } from "pino";
import type { Follower } from "../store/change-feed.js";
import type { RequestChange } from "../store/store.js";

/** The operator on the machine: new requests are logged; decisions arrive over the operator socket. */
export class OperatorLog implements Follower {
  readonly name = "operator-log";

  constructor(private readonly logger: Logger) {}

  async handle({ request, previous }: RequestChange): Promise<void> {
    if (request.status !== "pending" || previous !== undefined) return;
    this.logger.info(
      {
        requestId: request.id,
        skillId: request.skillId,
        codeSha256: request.codeSha256,
        secrets: request.secretNames,
        network: request.network,
        expiresAt: new Date(request.expiresAt).toISOString(),
      },
      `awaiting approval: npm run oauth3 -- show ${request.id}, then approve or deny`,
    );
  }
}
