import { sanitize } from "@oauth3/shared";
import type { ExecRequest } from "../store.js";

/** Telegram's limit on a message's text; we stay under it with room for the status footer. */
export const MAX_MESSAGE = 4096;
const MAX_CARD_BODY = 3300;
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

export function formatTime(ms: number): string {
  return `${new Date(ms).toISOString().slice(0, 19).replace("T", " ")} UTC`;
}

export interface RenderedCard {
  html: string;
  /** The code is too long to read inline: send it as a document too. */
  codeAsDocument: boolean;
}

/**
 * The approval card: everything the approver needs to decide, nothing taken on trust. Every field
 * that came from the agent or the code is cleaned and escaped; hosts are already punycode with ports.
 */
export function renderCard(r: ExecRequest, code: string, sandbox?: SandboxInfo): RenderedCard {
  const flaggedFields: string[] = [];
  const clean = (field: string, text: string, max: number) => {
    const c = cleanText(text, max);
    if (c.flagged) flaggedFields.push(field);
    return c.html;
  };
  const list = (items: string[]) => (items.length ? items.map((i) => `<code>${escapeHtml(i)}</code>`).join(", ") : "none");
  const lines = [
    "🔐 <b>Approval needed</b>",
    `Skill: <b>${clean("skill id", r.skillId, 128)}</b>` +
      (r.skillName && r.skillName !== r.skillId ? ` (header: ${clean("skill name", r.skillName, 128)})` : ""),
  ];
  if (r.description) lines.push(`About: ${clean("description", r.description, 300)}`);
  lines.push(`Agent: ${r.agent ? clean("agent", r.agent, 64) : "unknown (no agent identity configured)"}`);
  lines.push(`Secrets: ${list(r.secretNames)}`);
  lines.push(`Network: ${list(r.network)}`);
  lines.push(`Timeout: ${r.timeoutSeconds} s`);
  if (r.args.length) {
    lines.push("Args:");
    for (const a of r.args) lines.push(`  <code>${escapeHtml(a.name)}</code> = ${clean(`arg ${a.name}`, JSON.stringify(a.value), ARG_VALUE_LIMIT)}`);
  } else {
    lines.push("Args: none");
  }
  lines.push(`Code: ${r.codeSize} bytes, sha256 <code>${r.codeSha256}</code>`);
  lines.push(`Source: ${clean("source", r.source, 200)}`);
  lines.push(`Expires: ${formatTime(r.expiresAt)}`);
  lines.push(`Request: <code>${r.id}</code>`);
  if (sandbox) lines.push(renderSandbox(sandbox));
  if (flaggedFields.length) {
    lines.push(`⚠️ <b>Hidden or direction-changing characters</b> were shown as \\u escapes in: ${flaggedFields.join(", ")}`);
  }
  const safeCode = sanitize(code, { keepLayout: true });
  if (safeCode.flagged) lines.push("⚠️ <b>The code contains hidden, control or direction-changing characters</b> (shown as \\u escapes).");

  let html = lines.join("\n");
  const shownCode = escapeHtml(safeCode.text);
  const inline = code.length <= INLINE_CODE_LIMIT && html.length + shownCode.length + 40 <= MAX_CARD_BODY;
  if (inline) html += `\n<pre><code class="language-typescript">${shownCode}</code></pre>`;
  else html += "\n📎 The exact code is attached below as a document.";
  return { html, codeAsDocument: !inline };
}

/** The runner's sandbox modes, as GetHealth reports them. */
export interface SandboxInfo {
  isolation: string;
  egress: string;
}

/** The approver sees the sandbox before deciding; a weaker one is called out. */
export function renderSandbox(s: SandboxInfo): string {
  const strong = s.isolation === "per-run-uid" && s.egress === "proxy+firewall";
  return strong
    ? `Sandbox: own uid, egress only via the checking proxy`
    : `⚠️ <b>Weaker sandbox</b>: isolation ${escapeHtml(s.isolation)}, egress ${escapeHtml(s.egress)} (the skill may read the runner's files or reach internal addresses; see the README)`;
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
    return `⚠️ <b>Interrupted</b>: ${cleanText(r.error ?? "the run was cut off; its outcome is unknown and it will not be run again", 300).html}`;
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

/** Cuts rendered HTML to Telegram's limit without breaking a tag (drops the inline code first). */
export function fitMessage(html: string): string {
  if ([...html].length <= MAX_MESSAGE) return html;
  const withoutCode = html.replace(/\n<pre><code[^>]*>[\s\S]*?<\/code><\/pre>/, "\n📎 Code omitted here (see the document or `oauth3 show`).");
  if ([...withoutCode].length <= MAX_MESSAGE) return withoutCode;
  const cut = [...withoutCode.replace(/<[^>]+>/g, "")].slice(0, MAX_MESSAGE - 20).join("");
  return `${cut.replace(/&[a-z#0-9]*$/, "")}… (cut)`;
}
