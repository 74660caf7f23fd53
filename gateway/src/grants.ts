import { createHash, randomBytes } from "node:crypto";
import type { Database } from "lmdb";
import type { ExecRequest, RequestStore } from "./store.js";

/**
 * A time-boxed grant: "this exact code, with these secrets and hosts and this timeout, may run
 * without asking again until <expiry>". Args are not part of the key (an LLM skill's prompt changes
 * every time); the card says so. Each auto-approved run is still reported to the approvers, and a
 * grant can be revoked at any moment.
 */
export interface Grant {
  id: string;
  key: string;
  skillId: string;
  codeSha256: string;
  secretNames: string[];
  network: string[];
  timeoutSeconds: number;
  createdBy: string;
  createdAt: number;
  expiresAt: number;
  sourceRequestId: string;
  revokedAt?: number;
  revokedBy?: string;
  /** Per-grant random value carried by its revoke button. */
  nonce: string;
}

export function grantKey(r: Pick<ExecRequest, "codeSha256" | "secretNames" | "network" | "timeoutSeconds">): string {
  return createHash("sha256")
    .update(JSON.stringify([r.codeSha256, [...r.secretNames].sort(), [...r.network].sort(), r.timeoutSeconds]))
    .digest("hex");
}

export class GrantStore {
  private readonly grants: Database<Grant, string>;

  constructor(private readonly store: RequestStore) {
    this.grants = store.subDb<Grant>("grants");
  }

  async create(request: ExecRequest, createdBy: string, ttlMs: number, now = Date.now()): Promise<Grant> {
    const grant: Grant = {
      id: randomBytes(6).toString("hex"),
      key: grantKey(request),
      skillId: request.skillId,
      codeSha256: request.codeSha256,
      secretNames: request.secretNames,
      network: request.network,
      timeoutSeconds: request.timeoutSeconds,
      createdBy,
      createdAt: now,
      expiresAt: now + ttlMs,
      sourceRequestId: request.id,
      nonce: randomBytes(16).toString("base64url"),
    };
    await this.grants.put(grant.id, grant);
    await this.store.flushed;
    return grant;
  }

  get(id: string): Grant | undefined {
    return this.grants.get(id);
  }

  /** The active grant covering this request, if any. */
  findFor(request: ExecRequest, now = Date.now()): Grant | undefined {
    const key = grantKey(request);
    return this.active(now).find((g) => g.key === key);
  }

  active(now = Date.now()): Grant[] {
    const out: Grant[] = [];
    for (const { value } of this.grants.getRange()) {
      if (value.revokedAt === undefined && value.expiresAt > now) out.push(value);
    }
    return out.sort((a, b) => a.createdAt - b.createdAt);
  }

  /** True if this call revoked it (false: unknown, expired, or revoked before). */
  async revoke(id: string, by: string, now = Date.now()): Promise<boolean> {
    const revoked = await this.grants.transaction(() => {
      const g = this.grants.get(id);
      if (!g || g.revokedAt !== undefined || g.expiresAt <= now) return false;
      void this.grants.put(id, { ...g, revokedAt: now, revokedBy: by });
      return true;
    });
    await this.store.flushed;
    return revoked;
  }
}
