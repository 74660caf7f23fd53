import { createHash, randomBytes } from "node:crypto";
import { request } from "node:http";
import { resolve } from "node:path";
import {
  canonicalJson, GENESIS, policyDigest, replayRtmr3, reportDataFor, tdxReportData, verifyAuditChain, verifyReceipt, verifyRunReceipts,
  type AttestationStatement, type AuditEvent,
} from "@oauth3/shared";
import { newAgentToken } from "./agents.js";
import { AGENT_USAGE, agentCommand } from "./cli-agent.js";

/**
 * oauth3: the operator's command line. Talks to the gateway's operator socket, so it works only on
 * the machine, as the gateway's user (or root).
 *
 *   oauth3 pending              requests awaiting a decision
 *   oauth3 list [status]        all requests, optionally one status
 *   oauth3 show <id>            everything about one request, including the exact code
 *   oauth3 approve <id>         run it once
 *   oauth3 deny <id>
 *   add --json for machine-readable output
 */
const USAGE = `usage: oauth3 <command>
operator (on the machine, over the operator socket):
  pending | list [status] | show <id> | approve <id> | deny <id> [--json]
  token <agent-name>   prints a new agent token (once) and the AGENT_TOKENS entry that accepts it
  audit [--runner-key <hex>]  downloads the audit chain, verifies links, hashes and runner receipts (exit 5 if broken)
  verify [--nonce <hex>] [--known-head <seq>:<hash>]
                              attestation: checks the quote's report_data binds a fresh nonce, the audit head,
                              both public keys and the policy; verifies the chain to that head; lists what
                              is left to check elsewhere (exit 0 attested, 7 verified but no TEE, 5 broken);
                              --known-head: a head from an earlier run that the chain must still contain
  self-audit                  the privilege split as each process reports it; exit 6 on a violation
  audit, verify and self-audit also work remotely: --url <gateway base URL> with OAUTH3_AUDIT_TOKEN set
  (read-only; the gateway must list the token's entry in AUDIT_TOKENS)
agent (over the HTTP API):
${AGENT_USAGE}
  OPERATOR_SOCKET  the gateway's operator socket (default ./data/operator/operator.sock)`;

interface Reply {
  status: number;
  body: Record<string, unknown>;
}

/** Where operator commands go: the operator socket, or (read-only commands) a remote gateway. */
type Target = string | { url: string; token: string };

const describeTarget = (t: Target) => (typeof t === "string" ? t : t.url);

async function call(target: Target, method: string, path: string): Promise<Reply> {
  if (typeof target !== "string") {
    // Remote audit: GET /operator/<path> on the gateway's AUDIT_PORT with an AUDIT_TOKENS token.
    const res = await fetch(`${target.url.replace(/\/+$/, "")}/operator${path}`, {
      method, headers: { authorization: `Bearer ${target.token}` }, signal: AbortSignal.timeout(15_000),
    });
    return { status: res.status, body: (await res.json()) as Record<string, unknown> };
  }
  return new Promise((resolvePromise, reject) => {
    const req = request({ socketPath: target, method, path, timeout: 15_000 }, (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (c: Buffer) => chunks.push(c));
      res.on("end", () => {
        try {
          resolvePromise({ status: res.statusCode ?? 0, body: JSON.parse(Buffer.concat(chunks).toString("utf8")) });
        } catch (err) {
          reject(err);
        }
      });
    });
    req.on("timeout", () => req.destroy(new Error("timed out")));
    req.on("error", reject);
    req.end();
  });
}

type Row = Record<string, unknown>;

function summary(r: Row): string {
  const expires = typeof r.expires_at === "number" ? new Date(r.expires_at).toISOString() : "?";
  const list = (v: unknown) => (Array.isArray(v) && v.length > 0 ? v.join(", ") : "(none)");
  return [
    `${r.request_id}  ${r.status}  skill=${JSON.stringify(r.skill_id)}`,
    `  code sha256 ${r.code_hash} (${r.code_size} bytes) from ${r.source}`,
    `  secrets: ${list(r.secrets)}   network: ${list(r.network)}   timeout: ${r.timeout_seconds}s`,
    `  args: ${Array.isArray(r.args) && r.args.length > 0 ? r.args.map((a: { name: string; value: string }) => `${a.name}=${JSON.stringify(a.value).slice(0, 80)}`).join(" ") : "(none)"}`,
    `  expires ${expires}${r.decided_by ? `   decided by ${r.decided_by}` : ""}`,
  ].join("\n");
}

export async function runCli(argv: string[], env: NodeJS.ProcessEnv, out: (s: string) => void): Promise<number> {
  if (argv.includes("--help") || argv.includes("-h")) {
    out(argv[0] === "run" || argv[0] === "status" ? `usage: oauth3\n${AGENT_USAGE}` : USAGE);
    return 0;
  }
  if (argv[0] === "run" || argv[0] === "status") return agentCommand(argv[0], argv.slice(1), env, out);
  const json = argv.includes("--json");
  const [command, arg] = argv.filter((a) => a !== "--json");
  const socketPath = resolve(env.OPERATOR_SOCKET ?? "./data/operator/operator.sock");
  const needsId = command === "show" || command === "approve" || command === "deny" || command === "token";
  if (command === "token" && arg) {
    if (!/^[a-zA-Z0-9_.-]{1,64}$/.test(arg)) {
      out("oauth3: agent names are 1-64 of a-z A-Z 0-9 _ . -");
      return 2;
    }
    const { token, entry } = newAgentToken(arg);
    out(json ? JSON.stringify({ agent: arg, token, entry }) : `token for ${arg} (shown once; give it to the agent):\n  ${token}\nadd to the gateway's AGENT_TOKENS (comma-separated):\n  ${entry}`);
    return 0;
  }
  if (!command || command === "help" || command === "--help" || (needsId && !arg)) {
    out(USAGE);
    return command === "help" || command === "--help" ? 0 : 2;
  }
  if (command === "audit" || command === "verify" || command === "self-audit") {
    const u = argv.indexOf("--url");
    let target: Target = socketPath;
    if (u >= 0) {
      const url = argv[u + 1] ?? "";
      if (!/^https?:\/\//.test(url)) {
        out("oauth3: --url takes the gateway's http(s) base URL");
        return 2;
      }
      if (!env.OAUTH3_AUDIT_TOKEN) {
        out("oauth3: --url needs OAUTH3_AUDIT_TOKEN (a token whose entry is in the gateway's AUDIT_TOKENS)");
        return 2;
      }
      target = { url, token: env.OAUTH3_AUDIT_TOKEN };
    }
    if (command === "self-audit") return selfAuditCommand(target, json, out);
    if (command === "audit") {
      const pin = argv.indexOf("--runner-key");
      return auditCommand(target, json, out, pin >= 0 ? argv[pin + 1] : undefined);
    }
    const n = argv.indexOf("--nonce");
    const k = argv.indexOf("--known-head");
    return verifyCommand(target, json, out, n >= 0 ? argv[n + 1] : undefined, k >= 0 ? argv[k + 1] ?? "" : undefined);
  }
  let reply: Reply;
  try {
    switch (command) {
      case "pending":
        reply = await call(socketPath, "GET", "/requests?status=pending");
        break;
      case "list":
        reply = await call(socketPath, "GET", `/requests${arg ? `?status=${encodeURIComponent(arg)}` : ""}`);
        break;
      case "show":
        reply = await call(socketPath, "GET", `/requests/${encodeURIComponent(arg!)}`);
        break;
      case "approve":
      case "deny":
        reply = await call(socketPath, "POST", `/requests/${encodeURIComponent(arg!)}/${command}`);
        break;
      default:
        out(USAGE);
        return 2;
    }
  } catch (err) {
    out(`oauth3: cannot reach the gateway at ${socketPath}: ${(err as Error).message}`);
    return 3;
  }
  if (json) {
    out(JSON.stringify(reply.body, null, 2));
  } else if (reply.status >= 400) {
    out(`oauth3: ${String(reply.body.error)} (${String(reply.body.code)})`);
  } else if (command === "pending" || command === "list") {
    const rows = reply.body.requests as Row[];
    out(rows.length === 0 ? "no requests" : rows.map(summary).join("\n\n"));
  } else if (command === "show") {
    const r = reply.body;
    out(summary(r));
    if (r.description) out(`  description: ${JSON.stringify(r.description)}`);
    if (r.result) out(`  result: ${JSON.stringify(r.result, null, 2)}`);
    if (r.error) out(`  error: ${String(r.error)}`);
    out(`----- code (${r.code_size} bytes, sha256 ${r.code_hash}) -----\n${String(r.code)}\n----- end of code -----`);
  } else {
    out(`${String(reply.body.outcome)}: ${arg}`);
  }
  return reply.status >= 400 ? 1 : 0;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  runCli(process.argv.slice(2), process.env, (s) => process.stdout.write(`${s}\n`)).then(
    (code) => {
      process.exitCode = code; // not exit(): that would cut off output still queued for a pipe
    },
    (err: unknown) => {
      process.stderr.write(`oauth3: ${String(err)}\n`);
      process.exit(1);
    },
  );
}

/** Every page of the audit chain, plus the gateway's signed checkpoint of the head the last page ends at. */
async function downloadChain(target: Target): Promise<{ events: AuditEvent[]; checkpoint?: Checkpoint }> {
  const events: AuditEvent[] = [];
  let checkpoint: Checkpoint | undefined;
  for (let after = 0; ; ) {
    const page = await call(target, "GET", `/audit?after=${after}&limit=1000`);
    if (page.status !== 200) throw new Error(String(page.body.error));
    events.push(...(page.body.events as AuditEvent[]));
    checkpoint = page.body.checkpoint as Checkpoint | undefined; // the last page's names the head it ends at
    if (page.body.next === null) break;
    after = Number(page.body.next);
  }
  return { events, ...(checkpoint && { checkpoint }) };
}

interface Checkpoint {
  payload_json: string;
  signature: string;
  public_key: string;
}

/** Downloads every page of the audit chain, verifies hashes and links offline, prints a table. */
async function auditCommand(target: Target, json: boolean, out: (s: string) => void, runnerKey?: string): Promise<number> {
  let events: AuditEvent[];
  try {
    ({ events } = await downloadChain(target));
  } catch (err) {
    out(`oauth3: cannot read the audit log at ${describeTarget(target)}: ${(err as Error).message}`);
    return 3;
  }
  const chain = verifyAuditChain(events);
  const receipts = verifyRunReceipts(events, runnerKey);
  const verdict = { ok: chain.ok && receipts.ok, count: chain.count, head: chain.head, problems: [...chain.problems, ...receipts.problems] };
  if (json) {
    out(JSON.stringify({ verdict, runnerKeys: receipts.keys, events }, null, 2));
  } else {
    for (const e of events) {
      const d = e.data as Record<string, unknown>;
      const what = e.type === "request_received"
        ? `skill=${JSON.stringify(d.skillId)} code=${String(d.codeSha256).slice(0, 16)}… secrets=${(d.secretNames as string[]).join(",") || "-"}`
        : Object.entries(d).map(([k, v]) => `${k}=${typeof v === "string" ? v : JSON.stringify(v)}`).join(" ");
      out(`${String(e.seq).padStart(6)}  ${new Date(e.at).toISOString()}  ${e.type.padEnd(16)} ${e.requestId ?? ""}  ${what}`);
    }
    out(verdict.ok
      ? `chain OK: ${verdict.count} entries, head ${verdict.head}; ${receipts.receipts} run receipts valid, runner key ${receipts.keys[0] ?? "(none yet)"}`
      : `CHAIN BROKEN (${verdict.problems.length} problems):\n  ${verdict.problems.join("\n  ")}`);
    if (verdict.ok && !runnerKey) out("Compare the runner key with the one the runner publishes (/health runner_signing_key), or pin it with --runner-key.");
  }
  return verdict.ok ? 0 : 5;
}

const STILL_TO_CHECK = [
  "the quote's signature and TCB status with a DCAP verifier (save the evidence with --json; e.g. dcap-qvl, or Phala's attestation explorer): this command only reads the quote's layout, so every check above assumes the quote is genuine",
  "that compose_hash is the hash of the app-compose you published (dstack SDK getComposeHash) and that it pins the image digests you built and reviewed",
  "that MRTD, RTMR0-2 and os_image_hash are those of the dstack OS release you expect (boot measurements; this command replays RTMR3 only)",
  "that the approver ids, agents and limits in the policy are the ones you configured",
  "keep this run's checkpoint and head: a later chain that does not extend them was truncated or rewritten",
];

/**
 * oauth3 verify: fetches attestation evidence for a fresh nonce and checks, offline, everything that
 * can be checked without Intel's collateral: the nonce, the report_data binding (recomputed from the
 * statement, and read out of the quote), the policy digest, the gateway's countersignature, the audit
 * chain up to the attested head, and that every run receipt is signed by the attested runner key.
 */
async function verifyCommand(
  target: Target, json: boolean, out: (s: string) => void, givenNonce?: string, knownHead?: string,
): Promise<number> {
  const nonce = givenNonce ?? randomBytes(32).toString("hex");
  const known = knownHead === undefined ? undefined : /^(\d+):([0-9a-f]{64})$/.exec(knownHead);
  if (known === null) {
    out("oauth3: --known-head takes <seq>:<64 hex>, as printed by an earlier verify");
    return 2;
  }
  let evidence: Record<string, unknown>;
  let chain: Awaited<ReturnType<typeof downloadChain>>;
  try {
    const reply = await call(target, "GET", `/attestation?nonce=${encodeURIComponent(nonce)}`);
    if (reply.status !== 200) {
      out(`oauth3: attestation refused: ${String(reply.body.error)} (${String(reply.body.code)})`);
      return reply.status === 400 ? 2 : 3;
    }
    evidence = reply.body;
    chain = await downloadChain(target);
  } catch (err) {
    out(`oauth3: cannot reach the gateway at ${describeTarget(target)}: ${(err as Error).message}`);
    return 3;
  }
  let result: ReturnType<typeof verifyEvidence>;
  try {
    result = verifyEvidence(evidence, nonce, chain.events, chain.checkpoint);
  } catch (err) {
    // Evidence shaped unlike what an honest gateway sends: never a pass.
    result = { ok: false, checks: [{ check: "evidence is well-formed", ok: false, detail: (err as Error).message }] };
  }
  if (known) {
    const seq = Number(known[1]);
    const found = chain.events.find((e) => e.seq === seq);
    const ok = found?.hash === known[2];
    result.checks.push({ check: "the chain still contains the head you saw before", ok, detail: found ? `entry ${seq}${ok ? "" : " has another hash (rewritten)"}` : `entry ${seq} is gone (truncated)` });
    result.ok &&= ok;
  }
  const last = chain.events.at(-1);
  const headNow = last ? `${last.seq}:${last.hash}` : undefined;
  if (json) {
    out(JSON.stringify({ ok: result.ok, attested: result.ok && evidence.tee === true, checks: result.checks, still_to_check: STILL_TO_CHECK, head: headNow ?? null, evidence, checkpoint: chain.checkpoint }, null, 2));
  } else {
    for (const c of result.checks) out(`${c.ok ? "  ok  " : "  FAIL"}  ${c.check}${c.detail ? `: ${c.detail}` : ""}`);
    if (!result.ok) out("VERIFICATION FAILED: do not trust this deployment's evidence.");
    else if (evidence.tee !== true) out(`NOT ATTESTED: ${String(evidence.no_tee_reason)}\nThe chain and signatures check out, but nothing proves what code produced them.`);
    else out("Binding verified: the quote's report_data commits to your nonce, this audit head, both keys and the policy shown.");
    if (headNow) out(`Head now ${headNow}: pass it as --known-head next time to catch truncation or rewriting.`);
    out("Still to check elsewhere:");
    for (const s of STILL_TO_CHECK) out(`  - ${s}`);
  }
  return !result.ok ? 5 : evidence.tee === true ? 0 : 7;
}

export function verifyEvidence(
  evidence: Record<string, unknown>,
  nonce: string,
  events: AuditEvent[],
  checkpoint: Checkpoint | undefined,
): { ok: boolean; checks: { check: string; ok: boolean; detail?: string }[] } {
  const checks: { check: string; ok: boolean; detail?: string }[] = [];
  const add = (check: string, ok: boolean, detail?: string) => checks.push({ check, ok, ...(detail !== undefined && { detail }) });
  const st = evidence.statement as AttestationStatement | undefined;
  if (!st || typeof st !== "object" || typeof evidence.report_data !== "string") {
    add("evidence has a statement and report_data", false);
    return { ok: false, checks };
  }
  add("statement carries our nonce", st.nonce === nonce, st.nonce === nonce ? undefined : `got ${String(st.nonce)}`);
  const policyOk = policyDigest(evidence.policy) === st.policySha256;
  add("policy digest matches the policy shown", policyOk, `sha256 ${st.policySha256}`);
  const expected = reportDataFor(st);
  add("report_data = SHA-512(statement)", expected === evidence.report_data);
  if (evidence.tee === true) {
    const q = tdxReportData(String(evidence.quote ?? ""));
    add("the quote's report_data is that value", "reportData" in q && q.reportData === expected, "error" in q ? q.error : `TDX quote v${q.version}`);
    const info = (evidence.dstack_info ?? {}) as Record<string, unknown>;
    if ("rtmr3" in q) {
      // RTMR3 carries the app's identity: the event log must replay to it, and its events must
      // name the same app, compose hash and instance as Info.
      const replay = replayRtmr3(String(evidence.event_log ?? ""), q.rtmr3);
      add("RTMR3 replayed from the event log matches the quote", replay.ok, replay.ok ? `${q.rtmr3.slice(0, 16)}…` : replay.problems.join("; "));
      for (const [event, field] of [["compose-hash", "compose_hash"], ["app-id", "app_id"], ["instance-id", "instance_id"]] as const) {
        const inLog = replay.payloads.get(event);
        if (event === "instance-id" && inLog === undefined) continue; // not emitted by every dstack OS
        add(`RTMR3 ${event} event = Info ${field}`, inLog !== undefined && inLog === String(info[field] ?? "").toLowerCase(), `${String(info[field])}`);
      }
    }
    if (info.app_compose !== undefined) {
      const h = createHash("sha256").update(String(info.app_compose)).digest("hex");
      add("compose_hash = sha256(app_compose)", h === info.compose_hash, `app ${String(info.app_id)} compose ${String(info.compose_hash)}`);
    }
  }
  add("gateway countersigned the statement with the key it names",
    typeof evidence.gateway_signature === "string" && verifyReceipt(canonicalJson(st), evidence.gateway_signature, st.gatewayPublicKey));
  const chain = verifyAuditChain(events);
  add("audit chain links and hashes", chain.ok, chain.ok ? `${chain.count} entries` : chain.problems.join("; "));
  const at = st.auditHead.seq === 0 ? GENESIS : events.find((e) => e.seq === st.auditHead.seq)?.hash;
  add("attested audit head is in the chain", at === st.auditHead.hash, `entry ${st.auditHead.seq} ${st.auditHead.hash.slice(0, 16)}…`);
  const receipts = verifyRunReceipts(events, st.runnerPublicKey);
  add("every run carries a receipt signed by the attested runner key", receipts.ok,
    receipts.ok ? `${receipts.receipts} receipts, key ${st.runnerPublicKey.slice(0, 16)}… (${st.runnerKeySource})` : receipts.problems.join("; "));
  // The checkpoint must name the head the chain ends at, signed by the attested gateway key.
  const signedHead = checkpoint ? (JSON.parse(checkpoint.payload_json) as { seq?: number; hash?: string }) : undefined;
  const last = events.at(-1);
  add("checkpoint signed by the attested gateway key, naming the chain's head",
    checkpoint !== undefined && checkpoint.public_key === st.gatewayPublicKey &&
      verifyReceipt(checkpoint.payload_json, checkpoint.signature, checkpoint.public_key) &&
      signedHead?.seq === (last?.seq ?? 0) && signedHead?.hash === (last?.hash ?? GENESIS),
    checkpoint ? undefined : "no checkpoint in the answer");
  return { ok: checks.every((c) => c.ok), checks };
}

/** oauth3 self-audit: the operator /health's split checks as a table. */
async function selfAuditCommand(target: Target, json: boolean, out: (s: string) => void): Promise<number> {
  let reply: Reply;
  try {
    reply = await call(target, "GET", "/health");
  } catch (err) {
    out(`oauth3: cannot reach the gateway at ${describeTarget(target)}: ${(err as Error).message}`);
    return 3;
  }
  const audit = reply.body.self_audit as { ok: boolean; checks: { check: string; status: string; detail: string }[]; gateway: Row; runner: Row | null } | undefined;
  if (!audit) {
    out(`oauth3: ${String(reply.body.error ?? "no self-audit in the answer")}`);
    return 1;
  }
  if (json) out(JSON.stringify(audit, null, 2));
  else {
    const who = (name: string, p: Row | null) =>
      p ? `${name}: pid ${String(p.pid)} uid ${String(p.uid)} gid ${String(p.gid)}; env ${(p.envNames as string[] | undefined ?? []).join(" ")}; listening ${(p.listening as string[] | undefined ?? []).join(" ") || "-"}` : `${name}: not reachable`;
    out(who("gateway", audit.gateway));
    out(who("runner ", audit.runner));
    for (const c of audit.checks) out(`  ${c.status.toUpperCase().padEnd(4)}  ${c.check}: ${c.detail}`);
    out(audit.ok ? "split OK (see WARN lines for weaker modes)" : "SPLIT VIOLATED: see FAIL lines");
  }
  return audit.ok ? 0 : 6;
}
