import { createHash, randomBytes } from "node:crypto";
import type { Database } from "lmdb";
import type { ExecRequest, RequestStore } from "../store/store.js";

/**
 * A time-boxed grant: "this agent may run this exact code under this skill id, with these secrets
 * and hosts and this timeout, without asking again until <expiry>". The agent and skill id are part
 * of the key: a grant pressed on alice's card never approves bob's identical code, nor the same
 * code under another name. Args are not (an LLM skill's prompt changes every time); the card says
 * so. Each auto-approved run is still reported to the approvers, and a grant can be revoked at any
 * moment. Grants made before the key held the agent (v1 keys) match nothing: they fail closed.
 */
export interface Grant {
  id: string;
  key: string;
  /** The agent it was granted to; null when agents are not identified (AGENT_TOKENS unset). */
  agent: string | null;
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

export function grantKey(r: Pick<ExecRequest, "agent" | "skillId" | "codeSha256" | "secretNames" | "network" | "timeoutSeconds">): string {
  return createHash("sha256")
    .update(
      JSON.stringify(["v2", r.agent ?? null, r.skillId, r.codeSha256, [...r.secretNames].sort(), [...r.network].sort(), r.timeoutSeconds]),
    )
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
      agent: request.agent ?? null,
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
    await this.store.writeAudited((audit) => {
      audit(request.id, {
        type: "grant_created",
        data: {
          grantId: grant.id,
          agent: grant.agent,
          skillId: grant.skillId,
          codeSha256: grant.codeSha256,
          secretNames: grant.secretNames,
          network: grant.network,
          timeoutSeconds: grant.timeoutSeconds,
          by: createdBy,
          expiresAt: grant.expiresAt,
        },
      });
      void this.grants.put(grant.id, grant);
    });
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
    return this.store.writeAudited((audit) => {
      const g = this.grants.get(id);
      if (!g || g.revokedAt !== undefined || g.expiresAt <= now) return false;
      audit(g.sourceRequestId, { type: "grant_revoked", data: { grantId: id, by } });
      void this.grants.put(id, { ...g, revokedAt: now, revokedBy: by });
      return true;
    });
  }
}
