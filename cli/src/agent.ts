import { readFileSync } from "node:fs";
import { parseArgs } from "node:util";
import type { CliEnv } from "./env.js";

/**
 * The agent's side of the CLI, over the HTTP API: OAUTH3_URL, else OAUTH3_PROXY_URL (what compose
 * gives the agent: http://oauth3-proxy:3737, the seed's URL), else http://127.0.0.1:3737 (`npm start`
 * on this machine); OAUTH3_TOKEN when the gateway requires agent tokens.
 *   oauth3 run <file-or-url> [--secret NAME]... [--net host[:port]]... [--arg k=v]... [--timeout s]
 *              [--skill-id id] [--wait]     exit code: the skill's when it ran; 3 denied/expired;
 *                                           4 interrupted/failed before running; 1 usage/API errors
 *   oauth3 status <id> [--wait]
 */
export const AGENT_USAGE =
  `  run <file-or-url> [--secret NAME]... [--net host[:port]]... [--arg k=v]... [--timeout s] ` +
  `[--skill-id id] [--wait]
  status <id> [--wait]
  OAUTH3_URL, else OAUTH3_PROXY_URL (the agent's container: http://oauth3-proxy:3737), else http://127.0.0.1:3737;
  OAUTH3_TOKEN (agent bearer token, if required)`;

type Out = (s: string) => void;

export async function agentCommand(command: "run" | "status", argv: string[], env: CliEnv, out: Out): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      secret: { type: "string", multiple: true, default: [] },
      net: { type: "string", multiple: true },
      arg: { type: "string", multiple: true, default: [] },
      timeout: { type: "string" },
      "skill-id": { type: "string" },
      wait: { type: "boolean", default: false },
      json: { type: "boolean", default: false },
    },
  });
  const base = (env.OAUTH3_URL || env.OAUTH3_PROXY_URL || "http://127.0.0.1:3737").replace(/\/+$/, "");
  const headers: Record<string, string> = { "content-type": "application/json" };
  if (env.OAUTH3_TOKEN) headers.authorization = `Bearer ${env.OAUTH3_TOKEN}`;
  const target = positionals[0];
  if (!target) {
    out(`usage:\n${AGENT_USAGE}`);
    return 1;
  }

  let id = target;
  if (command === "run") {
    const args: Record<string, string> = {};
    for (const pair of values.arg) {
      const eq = pair.indexOf("=");
      if (eq < 1) {
        out(`oauth3: --arg needs name=value, got ${JSON.stringify(pair)}`);
        return 1;
      }
      args[pair.slice(0, eq)] = pair.slice(eq + 1);
    }
    const isUrl = /^(https?|data):/.test(target);
    const skillUrl = isUrl ? target : `data:text/typescript;base64,${readFileSync(target).toString("base64")}`;
    const body = {
      skill_id: values["skill-id"] ?? (isUrl ? "cli" : target.replace(/^.*\//, "").replace(/\.[jt]s$/, "")),
      skill_url: skillUrl,
      secrets: values.secret,
      ...(values.net && { network: values.net }),
      args,
      ...(values.timeout && { timeout_seconds: Number(values.timeout) }),
    };
    const res = await fetch(`${base}/execute`, { method: "POST", headers, body: JSON.stringify(body) });
    const json = (await res.json()) as Record<string, unknown>;
    if (!res.ok) {
      out(`oauth3: ${String(json.error)} (${String(json.code)})`);
      return 1;
    }
    id = String(json.request_id);
    out(`${id} ${String(json.status)}: ${String(json.message)} (code sha256 ${String(json.code_hash)})`);
    if (!values.wait) return 0;
  }

  for (;;) {
    const res = await fetch(`${base}/execute/${encodeURIComponent(id)}/status${values.wait ? "?wait=55" : ""}`, { headers });
    const s = (await res.json()) as StatusReply;
    if (!res.ok) {
      out(`oauth3: ${String(s.error)} (${String(s.code)})`);
      return 1;
    }
    const final = !["pending", "approved", "executing"].includes(String(s.status));
    if (!final && values.wait) continue;
    if (values.json || !final) {
      out(JSON.stringify(s, null, 2));
      return final ? exitCodeFor(s) : 0;
    }
    if (s.result) {
      if (s.result.stdout) out(String(s.result.stdout).replace(/\n$/, ""));
      if (s.result.stderr) out(`--- stderr ---\n${String(s.result.stderr).replace(/\n$/, "")}`);
    }
    out(
      `${id} ${s.status}${s.result ? ` (${s.result.reason}, exit ${s.result.exitCode}, ${s.result.duration} ms)` : ""}${s.error ? `: ${s.error}` : ""}`,
    );
    return exitCodeFor(s);
  }
}

/** What the agent API answers (status, or an error): only the fields the CLI reads. */
interface StatusReply {
  [field: string]: unknown;
  status?: string;
  error?: string;
  code?: string;
  result?: { success: boolean; exitCode: number; reason?: string; duration?: number; stdout?: string; stderr?: string };
}

function exitCodeFor(s: StatusReply): number {
  if (s.result) return s.result.success ? 0 : s.result.exitCode > 0 ? s.result.exitCode : 4;
  return s.status === "denied" || s.status === "expired" ? 3 : 4;
}
