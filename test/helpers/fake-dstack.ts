import { createHash } from "node:crypto";
import { chmodSync } from "node:fs";
import { createServer, type Server } from "node:http";

/**
 * A fake dstack guest agent on a Unix socket, speaking what @phala/dstack-sdk sends: HTTP/1.1
 * `POST /<Method>` with a JSON body, JSON answers with a Content-Length. Implements GetKey, GetQuote,
 * Info and Version. Everything is deterministic: keys are SHA-256 of (app id, path, purpose); the
 * quote is shaped like an Intel TDX v4 quote (48-byte header, 584-byte TD report whose last 64
 * bytes are report_data) followed by a marker instead of a signature, so no DCAP verifier accepts
 * it, while the report_data binding can be checked for real.
 */
export interface FakeDstack {
  /** The socket path, or http://127.0.0.1:<port> when started on TCP (the simulator's form). */
  socketPath: string;
  calls: { method: string; body: Record<string, unknown> }[];
  /** Make the next calls of one method fail with an error answer. */
  failing: Set<string>;
  appCompose: string;
  close(): Promise<void>;
}

export const FAKE_APP_ID = "ea549f02e1a25fabd1cb788380e033ec5461b2ff";
const MARKER = Buffer.from("FAKE-DSTACK-TEST-QUOTE: not signed by any Intel key");

export function fakeKey(path: string, purpose: string): Buffer {
  return createHash("sha256").update(`fake-dstack|${FAKE_APP_ID}|${path}|${purpose}`).digest();
}

export function fakeQuote(reportData: Buffer, rtmr3: Buffer = Buffer.alloc(48)): Buffer {
  const header = Buffer.alloc(48);
  header.writeUInt16LE(4, 0); // version 4
  header.writeUInt16LE(2, 2); // attestation key type: ECDSA-256-with-P-256
  header.writeUInt32LE(0x81, 4); // TEE type: TDX
  const body = Buffer.alloc(584);
  createHash("sha384").update("fake mrtd").digest().copy(body, 136); // MRTD at its TD report offset
  rtmr3.copy(body, 472);
  reportData.copy(body, 520);
  const sigLen = Buffer.alloc(4);
  sigLen.writeUInt32LE(MARKER.length, 0);
  return Buffer.concat([header, body, sigLen, MARKER]);
}

/** Serves on a Unix socket path, or with "tcp" on 127.0.0.1 (as DSTACK_SIMULATOR_ENDPOINT would). */
export async function startFakeDstack(socketPath: string | "tcp"): Promise<FakeDstack> {
  const appCompose = JSON.stringify({
    manifest_version: 2,
    name: "oauth3-proxy-test",
    runner: "docker-compose",
    docker_compose_file: `services:\n  vault-runner:\n    image: oauth3-proxy/vault-runner@sha256:${"ab".repeat(32)}\n`,
  });
  const log = runtimeEventLog([
    ["system-preparing", "", 1],
    ["app-id", FAKE_APP_ID, 1],
    ["compose-hash", composeHash(appCompose), 1],
    ["instance-id", "f".repeat(40), 1],
    ["boot-mr-done", "", 2],
  ]);
  const calls: FakeDstack["calls"] = [];
  const failing = new Set<string>();
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      const method = (req.url ?? "").replace(/^\//, "");
      let body: Record<string, unknown> = {};
      try {
        body = JSON.parse(Buffer.concat(chunks).toString("utf8") || "{}") as Record<string, unknown>;
      } catch {
        return send(res, 400, { error: "invalid JSON" });
      }
      calls.push({ method, body });
      if (req.method !== "POST") return send(res, 405, { error: "POST only" });
      if (failing.has(method)) return send(res, 200, { error: `${method} failed (injected)` });
      switch (method) {
        case "GetKey": {
          const key = fakeKey(String(body.path ?? ""), String(body.purpose ?? ""));
          return send(res, 200, { key: key.toString("hex"), signature_chain: [createHash("sha256").update(key).digest("hex")] });
        }
        case "GetQuote": {
          const hex = String(body.report_data ?? "");
          if (!/^(?:[0-9a-f]{2}){0,64}$/.test(hex)) return send(res, 200, { error: "report_data must be at most 64 bytes of hex" });
          const reportData = Buffer.alloc(64);
          Buffer.from(hex, "hex").copy(reportData);
          return send(res, 200, {
            quote: fakeQuote(reportData, log.rtmr3).toString("hex"),
            event_log: JSON.stringify(log.events),
            report_data: reportData.toString("hex"),
            vm_config: "{}",
          });
        }
        case "Info":
          return send(res, 200, {
            app_id: FAKE_APP_ID,
            instance_id: "f".repeat(40),
            app_cert: "",
            tcb_info: JSON.stringify({
              mrtd: "00".repeat(48),
              rtmr0: "",
              rtmr1: "",
              rtmr2: "",
              rtmr3: "",
              app_compose: appCompose,
              event_log: [],
            }),
            app_name: "oauth3-proxy-test",
            device_id: "d".repeat(64),
            mr_aggregated: "a".repeat(64),
            os_image_hash: "0".repeat(64),
            key_provider_info: JSON.stringify({ name: "fake", id: "" }),
            compose_hash: composeHash(appCompose),
            vm_config: "{}",
          });
        case "Version":
          return send(res, 200, { version: "0.5.8-fake", rev: "test" });
        default:
          return send(res, 404, { error: `no method ${method}` });
      }
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    if (socketPath === "tcp") server.listen(0, "127.0.0.1", () => resolve());
    else server.listen(socketPath, () => resolve());
  });
  if (socketPath !== "tcp") chmodSync(socketPath, 0o600);
  server.unref();
  return {
    socketPath: socketPath === "tcp" ? `http://127.0.0.1:${(server.address() as { port: number }).port}` : socketPath,
    calls,
    failing,
    appCompose,
    close: () => new Promise((r) => server.close(() => r())),
  };
}

/**
 * A dstack-style event log: a boot event on IMR 0 (ignored by RTMR3), then runtime events on IMR 3
 * with digests computed as dstack's cc-eventlog does (v1: type LE ‖ ":" ‖ name ‖ ":" ‖ payload;
 * v2: canonical JSON), and the RTMR3 they extend to.
 */
function runtimeEventLog(events: [string, string, 1 | 2][]): { events: unknown[]; rtmr3: Buffer } {
  const type = 0x08000001;
  let mr = Buffer.alloc(48);
  const out: unknown[] = [{ imr: 0, event_type: 1, digest: "11".repeat(48), event: "", event_payload: "" }];
  for (const [name, payloadHex, version] of events) {
    const typeLe = Buffer.alloc(4);
    typeLe.writeUInt32LE(type, 0);
    const input =
      version === 1
        ? Buffer.concat([typeLe, Buffer.from(`:${name}:`), Buffer.from(payloadHex, "hex")])
        : Buffer.from(`{"event":${JSON.stringify(name)},"event_type":${type},"payload":"${payloadHex}","version":2}`);
    const digest = createHash("sha384").update(input).digest();
    mr = createHash("sha384")
      .update(Buffer.concat([mr, digest]))
      .digest();
    out.push({
      imr: 3,
      event_type: type,
      digest: digest.toString("hex"),
      event: name,
      event_payload: payloadHex,
      ...(version === 2 && { version }),
    });
  }
  return { events: out, rtmr3: mr };
}

function composeHash(appCompose: string): string {
  return createHash("sha256").update(appCompose).digest("hex");
}

function send(res: import("node:http").ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { "content-type": "application/json", "content-length": Buffer.byteLength(text) });
  res.end(text);
}
