import { sanitize } from "./sanitize.js";

/**
 * The one statement of what an approval allows. Every surface a human decides on (the Telegram card
 * and each edit of it, the grant report, the operator CLI, later a web page) is rendered from this
 * object, so no surface can show less than another. Values are the request's own (not sanitised: a
 * renderer shows them through the one sanitiser); which fields held hidden characters and every
 * warning are decided here, once.
 *
 * Critical facts (skill id, agent, every secret, every host:port, timeout, code sha256 and size,
 * request id, expiry, sandbox, every warning) are never cut by any renderer; free text
 * (`skill_name`, `description`, `source`, arg values, the code itself) may be, marked as cut.
 */
export interface ApprovalStatement {
  v: 1;
  request_id: string;
  skill_id: string;
  /** The skill header's @name, when it differs from skill_id. Free text. */
  skill_name?: string;
  /** The requesting agent, or null when agents are not identified (no AGENT_TOKENS). */
  agent: string | null;
  /** Free text. */
  description?: string;
  /** Where the code came from (the skill URL as given). Free text. */
  source: string;
  /**
   * Every secret the skill is granted. `hosts` and `mode` are the runner's binding of the secret
   * (where it may be used, whether the skill sees a placeholder); absent until the runner reports it.
   */
  secrets: Array<{ name: string; hosts?: string[]; mode?: string }>;
  /** Every host:port the skill may reach. */
  network: string[];
  timeout_seconds: number;
  code: { sha256: string; size: number };
  expires_at: number;
  /** Arg names are critical (checked at intake), their values free text. */
  args: Array<{ name: string; value: string }>;
  /** The runner's sandbox as it reported it when the statement was made; absent if it could not be asked. */
  sandbox?: { isolation: string; egress: string; strong: boolean };
  /** Field names that held control, invisible or direction-changing characters. */
  flagged_fields: string[];
  /** Every warning, in order; each surface shows all of them. */
  warnings: Array<{
    kind: "sandbox" | "hidden-characters" | "code-characters" | "unknown-sandbox" | "secret-in-skill";
    title: string;
    detail: string;
  }>;
}

/** The request fields a statement is made of (structurally, the gateway's ExecRequest). */
export interface StatementSource {
  id: string;
  skillId: string;
  skillName?: string | undefined;
  agent?: string | undefined;
  description?: string | undefined;
  source: string;
  secretNames: string[];
  /** The runner's binding of each secret, as it reported it at intake. */
  secretBindings?: Array<{ name: string; mode: string; hosts: string[] }> | undefined;
  network: string[];
  timeoutSeconds: number;
  codeSha256: string;
  codeSize: number;
  expiresAt: number;
  args: Array<{ name: string; value: string }>;
}

const STRONG_SANDBOX = { isolation: "per-run-uid", egress: "proxy+firewall" } as const;

export function approvalStatement(r: StatementSource, code: string, sandbox?: { isolation: string; egress: string }): ApprovalStatement {
  const skillName = r.skillName && r.skillName !== r.skillId ? r.skillName : undefined;
  const fields: Array<[string, string | undefined]> = [
    ["skill id", r.skillId],
    ["agent", r.agent],
    ["skill name", skillName],
    ["description", r.description],
    ["source", r.source],
    ...r.args.map((a): [string, string] => [`arg ${a.name}`, JSON.stringify(a.value)]),
  ];
  const flagged = fields.filter(([, text]) => text !== undefined && sanitize(text).flagged).map(([field]) => field);
  const warnings: ApprovalStatement["warnings"] = [];
  const strong = sandbox !== undefined && sandbox.isolation === STRONG_SANDBOX.isolation && sandbox.egress === STRONG_SANDBOX.egress;
  if (!sandbox) {
    warnings.push({
      kind: "unknown-sandbox",
      title: "Sandbox unknown",
      detail: ": the runner did not report it (see /health/policy before approving)",
    });
  } else if (!strong) {
    warnings.push({
      kind: "sandbox",
      title: "Weaker sandbox",
      detail:
        `: isolation ${sandbox.isolation}, egress ${sandbox.egress} (the skill may read the runner's files or reach ` +
        `internal addresses; see the README)`,
    });
  }
  const envSecrets = (r.secretBindings ?? []).filter((b) => b.mode !== "placeholder" && r.secretNames.includes(b.name)).map((b) => b.name);
  if (envSecrets.length > 0) {
    warnings.push({
      kind: "secret-in-skill",
      title: "The skill holds a real secret value",
      detail: `: ${envSecrets.join(", ")} (bound "env" by the operator): the skill can send it anywhere it may reach, in any encoding`,
    });
  }
  if (sandbox?.isolation === "shared-uid" && r.secretNames.length > 0) {
    warnings.push({
      kind: "secret-in-skill",
      title: "Shared uid",
      detail:
        ": the skill runs as the runner's user and can read the runner's files, the secrets file included (placeholders protect only its environment)",
    });
  }
  if (flagged.length > 0) {
    warnings.push({
      kind: "hidden-characters",
      title: "Hidden or direction-changing characters",
      detail: ` were shown as \\u escapes in: ${summarizeFields(flagged)}`,
    });
  }
  if (sanitize(code, { keepLayout: true }).flagged) {
    warnings.push({
      kind: "code-characters",
      title: "The code contains hidden, control or direction-changing characters",
      detail: " (shown as \\u escapes)",
    });
  }
  return {
    v: 1,
    request_id: r.id,
    skill_id: r.skillId,
    ...(skillName !== undefined && { skill_name: skillName }),
    agent: r.agent ?? null,
    ...(r.description && { description: r.description }),
    source: r.source,
    secrets: r.secretNames.map((name) => {
      const b = r.secretBindings?.find((x) => x.name === name);
      if (!b) return { name };
      return b.mode === "placeholder"
        ? { name, hosts: [...b.hosts], mode: "skill sees a placeholder" }
        : { name, mode: "skill sees the real value" };
    }),
    network: [...r.network],
    timeout_seconds: r.timeoutSeconds,
    code: { sha256: r.codeSha256, size: r.codeSize },
    expires_at: r.expiresAt,
    args: r.args.map((a) => ({ name: a.name, value: a.value })),
    ...(sandbox && { sandbox: { isolation: sandbox.isolation, egress: sandbox.egress, strong } }),
    flagged_fields: flagged,
    warnings,
  };
}

/** Names of flagged fields; a long list of args is counted, not listed (the warning itself stays). */
function summarizeFields(fields: string[]): string {
  if (fields.length <= 6) return fields.join(", ");
  return `${fields.slice(0, 5).join(", ")} and ${fields.length - 5} more`;
}

export function formatUtc(ms: number): string {
  return `${new Date(ms).toISOString().slice(0, 19).replace("T", " ")} UTC`;
}

/** The sandbox line of a strong sandbox (a weaker or unknown one is a warning instead). */
export const STRONG_SANDBOX_LINE = "Sandbox: own uid, egress only via the checking proxy";

/**
 * The statement as plain terminal text, every value through the sanitiser. Critical facts are never
 * cut; free text is cut only when `freeTextLimit` is given (marked, with where to read all of it).
 */
export function renderStatementText(st: ApprovalStatement, options: { freeTextLimit?: number; indent?: string } = {}): string {
  const s = (t: string) => sanitize(t).text;
  const limit = options.freeTextLimit;
  const free = (t: string) => {
    const chars = [...s(t)];
    if (limit === undefined || chars.length <= limit) return chars.join("");
    return `${chars.slice(0, limit).join("")}… (cut: oauth3 show ${s(st.request_id)})`;
  };
  const secret = (x: ApprovalStatement["secrets"][number]) =>
    `${s(x.name)}${x.hosts ? ` -> ${x.hosts.map(s).join(", ")}` : ""}${x.mode ? ` (${s(x.mode)})` : ""}`;
  const lines = [
    `request ${s(st.request_id)}`,
    `skill:    ${s(JSON.stringify(st.skill_id))}${st.skill_name !== undefined ? `   (header name: ${free(JSON.stringify(st.skill_name))})` : ""}`,
    `agent:    ${st.agent === null ? "unknown (no agent identity configured)" : s(st.agent)}`,
    ...(st.description !== undefined ? [`about:    ${free(JSON.stringify(st.description))}`] : []),
    `secrets:  ${st.secrets.length ? st.secrets.map(secret).join(", ") : "none"}`,
    `network:  ${st.network.length ? st.network.map(s).join(", ") : "none"}`,
    `timeout:  ${st.timeout_seconds} s`,
    `code:     ${st.code.size} bytes, sha256 ${s(st.code.sha256)}`,
    `expires:  ${formatUtc(st.expires_at)}`,
    `source:   ${free(st.source)}`,
    st.args.length ? "args:" : "args:     none",
    ...st.args.map((a) => `  ${s(a.name)} = ${free(JSON.stringify(a.value))}`),
    ...(st.sandbox?.strong ? [STRONG_SANDBOX_LINE.replace("Sandbox: ", "sandbox:  ")] : []),
    ...st.warnings.map((w) => `WARNING: ${w.title}${w.detail}`),
  ];
  const indent = options.indent ?? "";
  return lines.map((l) => `${indent}${l}`).join("\n");
}
