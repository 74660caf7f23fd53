import { resolve } from "node:path";
import { parseArgs } from "node:util";
import { DEFAULT_PATHS, newAgentToken, renderStatementText, sanitize, sanitizeJson, type ApprovalStatement } from "@oauth3/shared";
import { auditorCommand } from "./audit.js";
import { call, type Reply } from "./call.js";
import { AGENT_USAGE, agentCommand } from "./agent.js";
import { loadCliEnv, type CliEnv } from "./env.js";

/**
 * oauth3: the operator's command line (USAGE below lists every command). Decisions and request
 * listings go over the gateway's operator socket, so they work only on the machine, as the
 * gateway's user (or root); the auditor's read-only commands also work remotely (audit.ts).
 */
const USAGE = `usage: oauth3 <command>
operator (on the machine, over the operator socket):
  pending | list [status] | show <id> | approve <id> | deny <id> [--json]
  show <id> --raw      the code's exact bytes, only into a file or pipe (terminal output is sanitised:
                       control, invisible and bidi characters are shown as \\u escapes)
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
  OPERATOR_SOCKET  the gateway's operator socket (default ${DEFAULT_PATHS.operatorSocket})`;

type Row = Record<string, unknown>;

/**
 * Every value that came from an agent, a skill or the runner goes through the one sanitiser before it
 * reaches the operator's terminal: an ESC sequence, a CR or a bidi override cannot make the terminal
 * show another line than the one that runs.
 */
const s = (v: unknown) => sanitize(String(v)).text;

/**
 * A request as the operator decides on it: the one approval statement (shared/approval-statement.ts,
 * the same the Telegram card is rendered from), every critical fact unabridged and every warning,
 * then its status. `freeTextLimit` shortens only free text (description, source, arg values).
 */
function statement(r: Row, freeTextLimit?: number): string {
  const st = r.statement as ApprovalStatement;
  const status = `${s(r.status)}${r.decided_by ? `, decided by ${s(r.decided_by)}` : ""}`;
  return `${renderStatementText(st, freeTextLimit === undefined ? {} : { freeTextLimit })}\nstatus:   ${status}`;
}

/** One compact entry of `list` (history, not a decision surface: `show` has the statement). */
function summary(r: Row): string {
  const list = (v: unknown) => (Array.isArray(v) && v.length > 0 ? v.map(s).join(", ") : "(none)");
  const st = r.statement as ApprovalStatement | undefined;
  return [
    `${s(r.request_id)}  ${s(r.status)}  skill=${s(JSON.stringify(r.skill_id))}`,
    `  code sha256 ${s(r.code_hash)} (${s(r.code_size)} bytes)   secrets: ${list(r.secrets)}   network: ${list(r.network)}`,
    ...(st?.flagged_fields.length
      ? [`  WARNING: control, invisible or direction-changing characters (shown as \\u escapes) in: ${st.flagged_fields.map(s).join(", ")}`]
      : []),
  ].join("\n");
}

/** Output through the one sanitiser: JSON stays valid JSON with the same strings; text keeps its lines. */
function terminalSafe(out: (s: string) => void, json: boolean): (s: string) => void {
  return (line) => out(json ? sanitizeJson(line) : sanitize(line, { keepLayout: true }).text);
}

export async function runCli(argv: string[], rawEnv: NodeJS.ProcessEnv, out: (s: string) => void): Promise<number> {
  if (argv.includes("--help") || argv.includes("-h")) {
    out(argv[0] === "run" || argv[0] === "status" ? `usage: oauth3\n${AGENT_USAGE}` : USAGE);
    return 0;
  }
  let env: CliEnv;
  try {
    env = loadCliEnv(rawEnv);
  } catch (err) {
    out(`oauth3: ${(err as Error).message}`);
    return 2;
  }
  // The agent commands print a skill's output: exact into a pipe (what an agent reads), through the
  // sanitiser on a terminal (what a person reads).
  if (argv[0] === "run" || argv[0] === "status") {
    return agentCommand(argv[0], argv.slice(1), env, process.stdout.isTTY ? terminalSafe(out, argv.includes("--json")) : out);
  }
  const socketPath = resolve(env.OPERATOR_SOCKET);
  const first = argv[0];
  // What a (possibly compromised, possibly remote) gateway answers is shown through the sanitiser too.
  if (first === "audit" || first === "verify" || first === "self-audit") {
    const json = argv.includes("--json");
    return auditorCommand(first, argv, env.OAUTH3_AUDIT_TOKEN, socketPath, json, terminalSafe(out, json));
  }
  let parsed: ReturnType<
    typeof parseArgs<{
      args: string[];
      allowPositionals: true;
      strict: true;
      options: { json: { type: "boolean"; default: false }; raw: { type: "boolean"; default: false } };
    }>
  >;
  try {
    parsed = parseArgs({
      args: argv,
      allowPositionals: true,
      strict: true,
      options: { json: { type: "boolean", default: false }, raw: { type: "boolean", default: false } },
    });
  } catch (err) {
    out(`oauth3: ${(err as Error).message.split("\n")[0]}\n${USAGE}`);
    return 2;
  }
  const { json, raw } = parsed.values;
  const [command, arg, ...extra] = parsed.positionals;
  if (extra.length > 0) {
    out(`oauth3: unexpected ${JSON.stringify(extra[0])}\n${USAGE}`);
    return 2;
  }
  const needsId = command === "show" || command === "approve" || command === "deny" || command === "token";
  if (command === "token" && arg) {
    if (!/^[a-zA-Z0-9_.-]{1,64}$/.test(arg)) {
      out("oauth3: agent names are 1-64 of a-z A-Z 0-9 _ . -");
      return 2;
    }
    const { token, entry } = newAgentToken(arg);
    out(
      json
        ? JSON.stringify({ agent: arg, token, entry })
        : `token for ${arg} (shown once; give it to the agent):\n  ${token}\nadd to the gateway's AGENT_TOKENS ` +
            `(comma-separated):\n  ${entry}`,
    );
    return 0;
  }
  if (!command || command === "help" || command === "--help" || (needsId && !arg)) {
    out(USAGE);
    return command === "help" || command === "--help" ? 0 : 2;
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
    out(sanitizeJson(JSON.stringify(reply.body, null, 2)));
  } else if (reply.status >= 400) {
    out(`oauth3: ${String(reply.body.error)} (${String(reply.body.code)})`);
  } else if (command === "pending" || command === "list") {
    const rows = reply.body.requests as Row[];
    const render = command === "pending" ? (r: Row) => statement(r, 200) : summary;
    out(rows.length === 0 ? "no requests" : rows.map(render).join("\n\n"));
  } else if (command === "show") {
    const r = reply.body;
    if (raw) {
      // The exact bytes, for a file or a pipe (never a terminal, which would interpret them).
      if (process.stdout.isTTY) {
        out("oauth3: --raw prints the code's exact bytes and refuses a terminal: redirect it (oauth3 show <id> --raw > skill.ts)");
        return 2;
      }
      out(String(r.code));
      return 0;
    }
    out(statement(r));
    if (r.result) out(`result:   ${s(JSON.stringify(r.result, null, 2))}`);
    if (r.error) out(`error:    ${s(r.error)}`);
    const code = sanitize(String(r.code), { keepLayout: true });
    out(`----- code (${s(r.code_size)} bytes, sha256 ${s(r.code_hash)}) -----\n${code.text}\n----- end of code -----`);
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
