import { sanitize } from "@oauth3/shared";
import type { ExecRequest } from "../store.js";

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

export function formatTime(ms: number): string {
  return `${new Date(ms).toISOString().slice(0, 19).replace("T", " ")} UTC`;
}

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
    .replace(/&lt;/g, "<").replace(/&gt;/g, ">").replace(/&quot;/g, '"').replace(/&#39;/g, "'").replace(/&amp;/g, "&")
    .length;
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
 * The approval card: everything the approver needs to decide, nothing taken on trust. One rule:
 * the security-relevant lines (skill id, agent, every secret, every host:port, timeout, code sha256
 * and size, expiry, request id, sandbox, every warning) are never shortened; only free text
 * (description, header name, source, arg values, the inline code) is, marked as cut, with the full
 * text in a document. The card plus `footer` (the decision/outcome of later edits) fits Telegram's
 * 4096 UTF-16 units; the intake limits (shared/limits.ts) make the critical lines alone fit with room.
 */
export function renderCard(r: ExecRequest, code: string, sandbox?: SandboxInfo, footer = ""): RenderedCard {
  const flaggedFields: string[] = [];
  const clean = (field: string, text: string, max = Infinity) => {
    const c = cleanText(text, max);
    if (c.flagged && !flaggedFields.includes(field)) flaggedFields.push(field);
    return c.html;
  };
  // Every field is sanitised once up front, so the warnings are complete whatever is cut later.
  const skill = clean("skill id", r.skillId);
  const agent = r.agent ? clean("agent", r.agent) : "unknown (no agent identity configured)";
  const headerName = r.skillName && r.skillName !== r.skillId ? r.skillName : undefined;
  for (const [field, text] of [["skill name", headerName], ["description", r.description], ["source", r.source]] as const) {
    if (text !== undefined) clean(field, text);
  }
  for (const a of r.args) clean(`arg ${a.name}`, JSON.stringify(a.value));
  const safeCode = sanitize(code, { keepLayout: true });

  const critical = {
    head: ["🔐 <b>Approval needed</b>", `Skill: <b>${skill}</b>`],
    identity: [`Agent: ${agent}`],
    grants: [
      r.secretNames.length ? "Secrets:" : "Secrets: none",
      ...r.secretNames.map((n) => `  • <code>${escapeHtml(n)}</code>`),
      r.network.length ? "Network:" : "Network: none",
      ...r.network.map((h) => `  • <code>${escapeHtml(h)}</code>`),
      `Timeout: ${r.timeoutSeconds} s`,
    ],
    facts: [
      `Code: ${r.codeSize} bytes, sha256 <code>${r.codeSha256}</code>`,
      `Expires: ${formatTime(r.expiresAt)}`,
      `Request: <code>${r.id}</code>`,
      ...(sandbox ? [renderSandbox(sandbox)] : []),
      ...(flaggedFields.length
        ? [`⚠️ <b>Hidden or direction-changing characters</b> were shown as \\u escapes in: ${summarizeFields(flaggedFields)}`]
        : []),
      ...(safeCode.flagged ? ["⚠️ <b>The code contains hidden, control or direction-changing characters</b> (shown as \\u escapes)."] : []),
    ],
  };

  let cut = false;
  const compose = (level: (typeof FIT_LEVELS)[number]) => {
    cut = false;
    let lastCut = false;
    const free = (field: string, text: string, max: number) => {
      const chars = [...sanitize(text).text];
      lastCut = chars.length > max;
      if (!lastCut) return clean(field, text);
      cut = true;
      return max > 0 ? `${escapeHtml(chars.slice(0, max).join(""))}…` : "";
    };
    const lines = [...critical.head];
    if (headerName) lines[1] += ` (header: ${free("skill name", headerName, Math.max(level.description, 0)) || "…"})`;
    if (r.description) {
      const d = free("description", r.description, level.description);
      lines.push(`About: ${d}${lastCut ? CUT : ""}`);
    }
    lines.push(...critical.identity, ...critical.grants);
    if (r.args.length) {
      lines.push("Args:");
      r.args.slice(0, level.args).forEach((a) => {
        const v = free(`arg ${a.name}`, JSON.stringify(a.value), level.argValue);
        lines.push(`  <code>${escapeHtml(a.name)}</code> = ${v || "…"}`);
      });
      if (r.args.length > level.args) {
        cut = true;
        lines.push(`  … ${r.args.length - level.args} more args${CUT}`);
      }
    } else {
      lines.push("Args: none");
    }
    lines.push(...critical.facts);
    const source = free("source", r.source, level.source);
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
      if (cut) card.details = renderDetails(r);
      return card;
    }
  }
  // Only reachable if the intake limits were raised past what a card can hold: refuse to show a
  // card that hides a granted secret or host.
  throw new Error(`approval card for ${r.id} does not fit Telegram's limit even without free text`);
}

/** Names of flagged fields; long lists of args are counted, not listed (the warning itself stays). */
function summarizeFields(fields: string[]): string {
  if (fields.length <= 6) return fields.join(", ");
  return `${fields.slice(0, 5).join(", ")} and ${fields.length - 5} more`;
}

/** Every free-text field in full (sanitised), for the details document when the card had to cut. */
export function renderDetails(r: ExecRequest): string {
  const s = (t: string) => sanitize(t).text;
  return [
    `Request ${r.id}: free text in full (the card shows the critical fields unabridged)`,
    `skill id: ${s(r.skillId)}`,
    ...(r.skillName ? [`header name: ${s(r.skillName)}`] : []),
    ...(r.description ? [`description: ${s(r.description)}`] : []),
    `source: ${s(r.source)}`,
    ...r.args.map((a) => `arg ${s(a.name)} = ${s(JSON.stringify(a.value))}`),
  ].join("\n");
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

/**
 * For messages other than approval cards (grant reports): cuts rendered HTML to Telegram's limit
 * without breaking a tag. Cards never go through this: renderCard fits them itself.
 */
export function fitMessage(html: string): string {
  if (telegramLength(html) <= MAX_MESSAGE) return html;
  const withoutCode = html.replace(/\n<pre><code[^>]*>[\s\S]*?<\/code><\/pre>/, "\n📎 Code omitted here (see the document or `oauth3 show`).");
  if ([...withoutCode].length <= MAX_MESSAGE) return withoutCode;
  const cut = [...withoutCode.replace(/<[^>]+>/g, "")].slice(0, MAX_MESSAGE - 20).join("");
  return `${cut.replace(/&[a-z#0-9]*$/, "")}… (cut)`;
}
