import type { ContentfulStatusCode } from "hono/utils/http-status";

/**
 * An error the agent API answers with: `{ error: <human message>, code: <stable code> }`.
 * `error` keeps upstream's field name and, where upstream had one, its wording.
 */
export class ApiError extends Error {
  constructor(
    readonly status: ContentfulStatusCode,
    readonly code: string,
    message: string,
  ) {
    super(message);
    this.name = "ApiError";
  }
}
