import { randomBytes } from "node:crypto";
import { parseArgs } from "node:util";
import { verifyAuditChain, verifyRunReceipts, type AuditEvent } from "@oauth3/shared";
import { call, describeTarget, type Reply, type Target } from "./call.js";
import { verifyEvidence, type Checkpoint } from "./verify-evidence.js";

type Row = Record<string, unknown>;

/**
 * The auditor's commands (audit, verify, self-audit): read-only, over the operator socket or, with
 * --url and OAUTH3_AUDIT_TOKEN, over a gateway's remote audit port.
 */
export async function auditorCommand(
  command: "audit" | "verify" | "self-audit",
  argv: string[],
  auditToken: string | undefined,
  socketPath: string,
  json: boolean,
  out: (s: string) => void,
): Promise<number> {
  // Each command's own options, strictly: an unknown option or one without its value is an error,
  // never a default (`verify --nonce` with no value used to verify against a random nonce).
  const own = { audit: ["runner-key"], verify: ["nonce", "known-head"], "self-audit": [] as string[] }[command];
  let values: Record<string, string | boolean | undefined>;
  try {
    ({ values } = parseArgs({
      args: argv.slice(1),
      options: {
        json: { type: "boolean" },
        url: { type: "string" },
        ...Object.fromEntries(own.map((name) => [name, { type: "string" as const }])),
      },
      strict: true,
      allowPositionals: false,
    }));
  } catch (err) {
    out(`oauth3 ${command}: ${(err as Error).message.split("\n")[0]}`);
    return 2;
  }
  let target: Target = socketPath;
  if (values.url !== undefined) {
    const url = String(values.url);
    if (!/^https?:\/\//.test(url)) {
      out("oauth3: --url takes the gateway's http(s) base URL");
      return 2;
    }
    if (!auditToken) {
      out("oauth3: --url needs OAUTH3_AUDIT_TOKEN (a token whose entry is in the gateway's AUDIT_TOKENS)");
      return 2;
    }
    target = { url, token: auditToken };
  }
  const text = (name: string) => (typeof values[name] === "string" ? (values[name] as string) : undefined);
  if (command === "self-audit") return selfAuditCommand(target, json, out);
  if (command === "audit") return auditCommand(target, json, out, text("runner-key"));
  return verifyCommand(target, json, out, text("nonce"), text("known-head"));
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
  const verdict = {
    ok: chain.ok && receipts.ok,
    count: chain.count,
    head: chain.head,
    problems: [...chain.problems, ...receipts.problems],
  };
  if (json) {
    out(JSON.stringify({ verdict, runnerKeys: receipts.keys, events }, null, 2));
  } else {
    const signed = new Map(receipts.summaries.map((s) => [s.seq, s] as const));
    for (const e of events) {
      const d = e.data as Record<string, unknown>;
      const what =
        e.type === "request_received"
          ? `skill=${JSON.stringify(d.skillId)} agent=${JSON.stringify(d.agent ?? null)} code=${String(d.codeSha256)} ` +
            `secrets=${(d.secretNames as string[]).join(",") || "-"} ` +
            `hosts=${((d.network as string[] | undefined) ?? []).join(",") || "-"} timeout=${String(d.timeoutSeconds)}`
          : Object.entries(d)
              .filter(([k]) => k !== "receipt")
              .map(([k, v]) => `${k}=${typeof v === "string" ? v : JSON.stringify(v)}`)
              .join(" ");
      out(`${String(e.seq).padStart(6)}  ${new Date(e.at).toISOString()}  ${e.type.padEnd(16)} ${e.requestId ?? ""}  ${what}`);
      const s = signed.get(e.seq);
      if (s) {
        // What the runner itself signed about this run, beside what the gateway recorded.
        out(
          `${" ".repeat(8)}runner receipt: secrets=${s.secretNames.join(",") || "-"} hosts=${s.network.join(",") || "-"} ` +
            `uid=${s.uid ?? "runner's own"} termination=${s.termination} exit=${s.exitCode}` +
            (s.approval ? ` approved-by=${s.approval.decidedBy} via=${s.approval.channel}` : ""),
        );
        for (const b of s.bindings ?? []) {
          out(
            `${" ".repeat(8)}  secret ${b.name}: ${b.mode === "placeholder" ? `placeholder, bound to ${b.hosts.join(",")} ${b.places.join(",")}` : "the skill held the real value"}`,
          );
        }
        for (const v of s.violations ?? []) {
          out(`${" ".repeat(8)}  REFUSED: a placeholder of ${v.secret} sent to ${v.host} in ${v.where}`);
        }
      }
    }
    out(
      verdict.ok
        ? `chain OK: ${verdict.count} entries, head ${verdict.head}; ${receipts.receipts} run receipts valid, runner key ` +
            `${receipts.keys[0] ?? "(none yet)"}`
        : `CHAIN BROKEN (${verdict.problems.length} problems):\n  ${verdict.problems.join("\n  ")}`,
    );
    if (verdict.ok && !runnerKey)
      out("Compare the runner key with the one the runner publishes (/health runner_signing_key), or pin it with --runner-key.");
  }
  return verdict.ok ? 0 : 5;
}

const STILL_TO_CHECK = [
  "the quote's signature and TCB status with a DCAP verifier (save the evidence with --json; e.g. dcap-qvl, or Phala's " +
    "attestation explorer): this command only reads the quote's layout, so every check above assumes the quote is genuine",
  "that compose_hash is the hash of the app-compose you published (dstack SDK getComposeHash) and that it pins the image " +
    "digests you built and reviewed",
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
  target: Target,
  json: boolean,
  out: (s: string) => void,
  givenNonce?: string,
  knownHead?: string,
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
    result.checks.push({
      check: "the chain still contains the head you saw before",
      ok,
      detail: found ? `entry ${seq}${ok ? "" : " has another hash (rewritten)"}` : `entry ${seq} is gone (truncated)`,
    });
    result.ok &&= ok;
  }
  const last = chain.events.at(-1);
  const headNow = last ? `${last.seq}:${last.hash}` : undefined;
  if (json) {
    out(
      JSON.stringify(
        {
          ok: result.ok,
          attested: result.ok && evidence.tee === true,
          checks: result.checks,
          still_to_check: STILL_TO_CHECK,
          head: headNow ?? null,
          evidence,
          checkpoint: chain.checkpoint,
        },
        null,
        2,
      ),
    );
  } else {
    for (const c of result.checks) out(`${c.ok ? "  ok  " : "  FAIL"}  ${c.check}${c.detail ? `: ${c.detail}` : ""}`);
    if (!result.ok) out("VERIFICATION FAILED: do not trust this deployment's evidence.");
    else if (evidence.tee !== true)
      out(
        `NOT ATTESTED: ${String(evidence.no_tee_reason)}\nThe chain and signatures check out, but nothing proves what code produced them.`,
      );
    else out("Binding verified: the quote's report_data commits to your nonce, this audit head, both keys and the policy shown.");
    if (headNow) out(`Head now ${headNow}: pass it as --known-head next time to catch truncation or rewriting.`);
    out("Still to check elsewhere:");
    for (const s of STILL_TO_CHECK) out(`  - ${s}`);
  }
  return !result.ok ? 5 : evidence.tee === true ? 0 : 7;
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
  const audit = reply.body.self_audit as
    | { ok: boolean; checks: { check: string; status: string; detail: string }[]; gateway: Row; runner: Row | null }
    | undefined;
  if (!audit) {
    out(`oauth3: ${String(reply.body.error ?? "no self-audit in the answer")}`);
    return 1;
  }
  if (json) out(JSON.stringify(audit, null, 2));
  else {
    const who = (name: string, p: Row | null) =>
      p
        ? `${name}: pid ${String(p.pid)} uid ${String(p.uid)} gid ${String(p.gid)}; env ` +
          `${((p.envNames as string[] | undefined) ?? []).join(" ")}; listening ${((p.listening as string[] | undefined) ?? []).join(" ") || "-"}`
        : `${name}: not reachable`;
    out(who("gateway", audit.gateway));
    out(who("runner ", audit.runner));
    for (const c of audit.checks) out(`  ${c.status.toUpperCase().padEnd(4)}  ${c.check}: ${c.detail}`);
    out(audit.ok ? "split OK (see WARN lines for weaker modes)" : "SPLIT VIOLATED: see FAIL lines");
  }
  return audit.ok ? 0 : 6;
}
