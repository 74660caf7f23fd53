import { hkdfSync } from "node:crypto";
import { DstackClient } from "@phala/dstack-sdk";

/** The dstack key path the runner's receipt key is derived from (part of the documented design). */
export const RECEIPT_KEY_PATH = "oauth3-proxy/vault-runner/receipt-signing";

/** Info fields an operator compares with what was deployed (all public). */
const INFO_FIELDS = [
  "app_id",
  "instance_id",
  "app_name",
  "compose_hash",
  "os_image_hash",
  "device_id",
  "key_provider_info",
  "mr_aggregated",
] as const;

/**
 * The dstack guest agent, through @phala/dstack-sdk. Only the runner talks to it: GetKey derives
 * keys per app, not per container, so a gateway with the socket could derive the runner's key.
 */
export class DstackAgent {
  private constructor(
    private readonly client: DstackClient,
    readonly endpoint: string,
  ) {}

  /** Connects and checks the agent answers (Info); a configured but dead agent stops the start. */
  static async connect(endpoint: string): Promise<DstackAgent> {
    let client: DstackClient;
    try {
      client = new DstackClient(endpoint);
    } catch (err) {
      throw new Error(`dstack guest agent at ${endpoint}: ${(err as Error).message}`);
    }
    const agent = new DstackAgent(client, endpoint);
    await agent.info();
    return agent;
  }

  /**
   * A 32-byte Ed25519 seed from the app's key at RECEIPT_KEY_PATH (GetKey, default algorithm, so it
   * works on every dstack OS version), stretched with HKDF-SHA256 under a fixed label. The same app
   * gets the same key after a restart or redeploy; another app, or this key path elsewhere, does not.
   */
  async receiptSeed(): Promise<Buffer> {
    const { key } = await this.call("GetKey", () => this.client.getKey(RECEIPT_KEY_PATH, "receipt-signing"));
    if (key.length < 32) throw new Error(`dstack GetKey returned ${key.length} bytes; 32 expected`);
    return Buffer.from(hkdfSync("sha256", key, "oauth3-proxy", "receipt-signing ed25519 v1", 32));
  }

  async quote(reportDataHex: string): Promise<{ quote: string; eventLog: string }> {
    const r = await this.call("GetQuote", () => this.client.getQuote(Buffer.from(reportDataHex, "hex")));
    return { quote: r.quote.replace(/^0x/, ""), eventLog: r.event_log };
  }

  async info(): Promise<Record<string, unknown>> {
    const r = (await this.call("Info", () => this.client.info())) as unknown as Record<string, unknown>;
    const out: Record<string, unknown> = {};
    for (const f of INFO_FIELDS) if (r[f] !== undefined) out[f] = r[f];
    const tcb = r.tcb_info as { app_compose?: string } | undefined;
    if (tcb?.app_compose) out.app_compose = tcb.app_compose;
    return out;
  }

  private async call<T>(what: string, f: () => Promise<T>): Promise<T> {
    try {
      return await f();
    } catch (err) {
      throw new Error(`dstack guest agent ${what} at ${this.endpoint} failed: ${(err as Error).message}`);
    }
  }
}
