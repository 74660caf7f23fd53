import { formatUtc, renderStatementText, sanitize, STRONG_SANDBOX_LINE, type ApprovalStatement } from "@oauth3/shared";
import type { ExecRequest } from "../store/store.js";

/** Telegram's limit on a message's text; we stay under it with room for the status footer. */
export const MAX_MESSAGE = 4096;
/** An upper bound of renderDecisionFooter's length (its excerpt and error are cut; checked by a test). */
export const MAX_FOOTER = 1000;
const INLINE_CODE_LIMIT = 1500;
const ARG_VALUE_LIMIT = 120;
const EXCERPT_LIMIT = 400;

export function escapeHtml(text: string): string {
  return text.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(/"/g, "&quot;");
}

/**
 * Untrusted text made safe to show: through the one sanitiser (shared/sanitize.ts: every control,
 * invisible or direction-changing code point shown as its escape, e.g. \u202e), length cut, HTML
 * escaped. `flagged` tells the card to warn, naming the field.
 */
export function cleanText(text: string, max: number): { html: string; flagged: boolean } {
  const { text: shown, flagged } = sanitize(text);
  let out = shown;
  const chars = [...out];
  if (chars.length > max) out = `${chars.slice(0, max).join("")}…`;
  return { html: escapeHtml(out), flagged };
}

export const formatTime = formatUtc;

export interface RenderedCard {
  html: string;
  /** The code is not inline (too long, or no room left): send it as a document too. */
  codeAsDocument: boolean;
  /** Free text (description, source, arg values) was shortened: `details` holds all of it. */
  details?: string;
}

/** Length as Telegram counts it: UTF-16 code units of the text after entity parsing. */
export function telegramLength(html: string): number {
  return html
    .replace(/<[^>]*>/g, "")
    .replace(/&lt;/g, "<")
    .replace(/&gt;/g, ">")
    .replace(/&quot;/g, '"')
    .replace(/&#39;/g, "'")
    .replace(/&amp;/g, "&").length;
}

/** How far free text may be cut, tried in order until the card (and its footer) fits. */
const FIT_LEVELS = [
  { inlineCode: true, description: 300, source: 200, argValue: ARG_VALUE_LIMIT, args: Infinity },
  { inlineCode: false, description: 300, source: 200, argValue: ARG_VALUE_LIMIT, args: Infinity },
  { inlineCode: false, description: 120, source: 80, argValue: 40, args: Infinity },
  { inlineCode: false, description: 60, source: 40, argValue: 16, args: 8 },
  { inlineCode: false, description: 0, source: 0, argValue: 0, args: 0 },
] as const;
const CUT = " <i>(cut: full text in the details document)</i>";

/**
 * The approval card, rendered from the one approval statement (shared/approval-statement.ts) that
 * every surface renders. One rule: the security-relevant lines (skill id, agent, every secret, every
 * host:port, timeout, code sha256 and size, expiry, request id, sandbox, every warning) are never
 * shortened; only free text (description, header name, source, arg values, the inline code) is,
 * marked as cut, with the full text in a document. The card plus `footer` (the decision/outcome of
 * later edits) fits Telegram's 4096 UTF-16 units; the intake limits (shared/limits.ts) make the
 * critical lines alone fit with room.
 */
export function renderCard(st: ApprovalStatement, code: string, footer = ""): RenderedCard {
  const safeCode = sanitize(code, { keepLayout: true });
  const c = criticalLines(st);
  const critical = {
    head: ["🔐 <b>Approval needed</b>", c.skill],
    identity: [c.agent],
    grants: c.grants,
    facts: [c.code, `Expires: ${formatTime(st.expires_at)}`, c.request, ...c.checks],
  };

  let cut = false;
  const compose = (level: (typeof FIT_LEVELS)[number]) => {
    cut = false;
    let lastCut = false;
    const free = (text: string, max: number) => {
      const chars = [...sanitize(text).text];
      lastCut = chars.length > max;
      if (!lastCut) return escapeHtml(chars.join(""));
      cut = true;
      return max > 0 ? `${escapeHtml(chars.slice(0, max).join(""))}…` : "";
    };
    const lines = [...critical.head];
    if (st.skill_name !== undefined) lines[1] += ` (header: ${free(st.skill_name, Math.max(level.description, 0)) || "…"})`;
    if (st.description) {
      const d = free(st.description, level.description);
      lines.push(`About: ${d}${lastCut ? CUT : ""}`);
    }
    lines.push(...critical.identity, ...critical.grants);
    if (st.args.length) {
      lines.push("Args:");
      st.args.slice(0, level.args).forEach((a) => {
        const v = free(JSON.stringify(a.value), level.argValue);
        lines.push(`  <code>${shown(a.name)}</code> = ${v || "…"}`);
      });
      if (st.args.length > level.args) {
        cut = true;
        lines.push(`  … ${st.args.length - level.args} more args${CUT}`);
      }
    } else {
      lines.push("Args: none");
    }
    lines.push(...critical.facts);
    const source = free(st.source, level.source);
    lines.push(`Source: ${source || "…"}${lastCut ? CUT : ""}`);
    let html = lines.join("\n");
    const inline = level.inlineCode && code.length <= INLINE_CODE_LIMIT;
    if (inline) html += `\n<pre><code class="language-typescript">${escapeHtml(safeCode.text)}</code></pre>`;
    else html += "\n📎 The exact code is attached below as a document.";
    return { html, inline };
  };
  for (const level of FIT_LEVELS) {
    const { html, inline } = compose(level);
    if (telegramLength(html + footer) <= MAX_MESSAGE) {
      const card: RenderedCard = { html, codeAsDocument: !inline };
      if (cut) card.details = renderDetails(st);
      return card;
    }
  }
  // Only reachable if the intake limits were raised past what a card can hold: refuse to show a
  // card that hides a granted secret or host.
  throw new Error(`approval card for ${st.request_id} does not fit Telegram's limit even without free text`);
}

/** Untrusted text through the one sanitiser, then HTML-escaped. */
export const shown = (text: string) => escapeHtml(sanitize(text).text);

/** The critical lines of a statement, as every Telegram message about a request shows them. */
function criticalLines(st: ApprovalStatement) {
  return {
    skill: `Skill: <b>${shown(st.skill_id)}</b>`,
    agent: `Agent: ${st.agent !== null ? shown(st.agent) : "unknown (no agent identity configured)"}`,
    grants: [
      ...secretLines(st),
      st.network.length ? "Network:" : "Network: none",
      ...st.network.map((h) => `  • <code>${shown(h)}</code>`),
      `Timeout: ${st.timeout_seconds} s`,
    ],
    code: `Code: ${st.code.size} bytes, sha256 <code>${shown(st.code.sha256)}</code>`,
    request: `Request: <code>${shown(st.request_id)}</code>`,
    checks: [...(st.sandbox?.strong ? [STRONG_SANDBOX_LINE] : []), ...warningLines(st)],
  };
}

/** One line per secret, with the runner's binding (hosts, placeholder or env) when it reports one. */
function secretLines(st: ApprovalStatement): string[] {
  if (st.secrets.length === 0) return ["Secrets: none"];
  return [
    "Secrets:",
    ...st.secrets.map((x) => {
      const hosts = x.hosts ? ` -> ${x.hosts.map(shown).join(", ")}` : "";
      const mode = x.mode ? ` (${shown(x.mode)})` : "";
      return `  • <code>${shown(x.name)}</code>${hosts}${mode}`;
    }),
  ];
}

/** Every warning of the statement, each on its own line, never cut. */
export function warningLines(st: ApprovalStatement): string[] {
  return st.warnings.map((w) => `⚠️ <b>${escapeHtml(w.title)}</b>${escapeHtml(w.detail)}`);
}

/** Every free-text field in full (sanitised), for the details document when the card had to cut. */
export function renderDetails(st: ApprovalStatement): string {
  return (
    `Request ${sanitize(st.request_id).text}: the full statement (the card shortened free text; every other line is as on ` +
    `the card)\n${renderStatementText(st)}`
  );
}

/** The runner's sandbox modes, as GetHealth reports them. */
export interface SandboxInfo {
  isolation: string;
  egress: string;
}

export function renderDecisionFooter(r: ExecRequest): string {
  const who = r.decidedBy ? escapeHtml(r.decidedBy) : "nobody";
  switch (r.status) {
    case "denied":
      return `\n\n❌ <b>Denied</b> by ${who} at ${formatTime(r.decidedAt!)}`;
    case "expired":
      return `\n\n⌛ <b>Expired</b> at ${formatTime(r.decidedAt ?? r.expiresAt)}: nobody decided, it will not run.`;
    case "approved":
    case "executing":
      return `\n\n✅ <b>Approved</b> by ${who} at ${formatTime(r.decidedAt!)}, running…`;
    case "pending":
      return "";
    default:
      return `\n\n✅ <b>Approved</b> by ${who} at ${formatTime(r.decidedAt!)}\n${renderOutcome(r)}`;
  }
}

export function renderOutcome(r: ExecRequest): string {
  if (r.status === "interrupted") {
    return (
      `⚠️ <b>Interrupted</b>: ` +
      `${cleanText(r.error ?? "the run was cut off; its outcome is unknown and it will not be run again", 300).html}`
    );
  }
  if (!r.result) return `❗ <b>Failed</b>: ${cleanText(r.error ?? "unknown error", 300).html}`;
  const res = r.result;
  const head = res.success
    ? `🏁 <b>Completed</b>: exit 0 in ${res.duration} ms`
    : `💥 <b>Failed</b>: ${res.reason === "exited" ? `exit ${res.exitCode}` : res.reason} after ${res.duration} ms`;
  const out = (res.stdout || res.stderr).trim();
  if (!out) return head;
  const c = cleanText(out, EXCERPT_LIMIT);
  return `${head}\n<pre>${c.html}</pre>`;
}

/**
 * The report of a run a grant approved, from the same statement and under the same rule as the
 * card: every critical line unabridged; only the outcome's excerpt (already bounded) is free text.
 */
export function renderGrantReport(st: ApprovalStatement, grantId: string, at: number, outcome?: string): string {
  const c = criticalLines(st);
  const lines = [
    `🤖 <b>Auto-approved</b> by grant <code>${escapeHtml(grantId)}</code> at ${formatTime(at)}, ` +
      `given to this agent for this skill id, code, secrets, hosts and timeout (args may differ)`,
    c.skill,
    c.agent,
    ...c.grants,
    c.code,
    c.request,
    ...c.checks,
  ];
  const html = [...lines, ...(outcome ? [outcome] : [])].join("\n");
  if (telegramLength(html) > MAX_MESSAGE) throw new Error(`grant report for ${st.request_id} does not fit Telegram's limit`);
  return html;
}

/**
 * Lines of a listing (/pending, /grants) split into as many messages as Telegram's limit needs,
 * never cutting a line: each line holds critical facts (ids, full hashes, secrets, hosts).
 */
export function chunkLines(lines: string[], trailer = ""): string[] {
  const messages: string[] = [];
  let current = "";
  for (const line of lines) {
    const next = current ? `${current}\n${line}` : line;
    if (current && telegramLength(next + trailer) > MAX_MESSAGE) {
      messages.push(current);
      current = line;
    } else current = next;
  }
  if (current || trailer) messages.push(current + trailer);
  return messages;
}

/** One waiting request in /pending: id, skill (sanitised), full code hash, expiry. */
export function pendingLine(r: Pick<ExecRequest, "id" | "skillId" | "codeSha256" | "expiresAt">): string {
  return `<code>${r.id}</code> <b>${shown(r.skillId)}</b> sha256 <code>${r.codeSha256}</code> expires ${formatTime(r.expiresAt)}`;
}
