/**
 * The one sanitiser for every surface a human decides on (Telegram card and its edits, the CLI, later
 * a web page). Text from an agent, a skill or an upstream may hold characters that draw something
 * else than what is there: controls (ESC sequences, CR rewriting a terminal line, C1), bidi
 * overrides and isolates, line/paragraph separators (a fake new line on a card), zero-width and
 * every other default-ignorable code point (tag characters U+E0000.., variation selectors, Hangul
 * fillers), lone surrogates, private-use and unassigned code points. Each is shown visibly as its
 * escape (`\u202e`, `\u{e0041}`) and the text is flagged; ordinary UTF-8 (accents, CJK, emoji)
 * stays readable. With `keepLayout`, newline and tab stay as they are (code is read as code).
 */
const UNSAFE = /[\p{Cc}\p{Cf}\p{Zl}\p{Zp}\p{Cs}\p{Co}\p{Cn}\p{Default_Ignorable_Code_Point}]/gu;

export interface Sanitized {
  text: string;
  /** Something was escaped: surfaces warn, naming the field. */
  flagged: boolean;
}

export function escapeCodePoint(ch: string): string {
  const cp = ch.codePointAt(0)!;
  return cp <= 0xffff ? `\\u${cp.toString(16).padStart(4, "0")}` : `\\u{${cp.toString(16)}}`;
}

export function sanitize(text: string, options: { keepLayout?: boolean } = {}): Sanitized {
  let flagged = false;
  const out = text.replace(UNSAFE, (ch) => {
    if (options.keepLayout && (ch === "\n" || ch === "\t")) return ch;
    flagged = true;
    return escapeCodePoint(ch);
  });
  return { text: out, flagged };
}

/**
 * The same, for JSON text (`--json` output): each unsafe code point becomes `\uXXXX` per UTF-16 unit,
 * which is still valid JSON meaning exactly the same string, but never reaches a terminal raw.
 */
export function sanitizeJson(json: string): string {
  return json.replace(UNSAFE, (ch) => {
    if (ch === "\n" || ch === "\t") return ch; // pretty-printing; JSON strings never hold them raw
    let out = "";
    for (let i = 0; i < ch.length; i++) out += `\\u${ch.charCodeAt(i).toString(16).padStart(4, "0")}`;
    return out;
  });
}
