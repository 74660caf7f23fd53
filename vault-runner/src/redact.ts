/**
 * Removes granted secret values from skill output before it leaves the runner.
 *
 * Caught: the raw value and its base64 (standard and url-safe, any alignment inside a longer
 * encoded string), hex (either case), URL-encoded and JSON-escaped forms.
 * Not caught (documented in the README): any other transformation the skill applies (reversal,
 * XOR, splitting across lines, encryption, compression). Redaction is a safety net for accidents,
 * not a barrier against a malicious approved skill; the approval is.
 */
export interface Redactor {
  redact(text: string, truncated: boolean): { text: string; redacted: boolean };
}

/** Shifted base64 forms shorter than this would match ordinary text too often. */
const MIN_SHIFTED_LENGTH = 8;

/**
 * Literal multi-needle matching: every encoded form is searched with indexOf (V8's Boyer-Moore
 * family, linear in the text), never compiled into one RegExp. A RegExp of every form stops
 * compiling from a 16 KiB secret ("Regular expression too large", with the pattern, that is the
 * value, in its message); this has no such limit, so the only bound is the documented maximum
 * secret size the loader enforces (MAX_SECRET_BYTES in secrets.ts). Occurrences of different
 * forms that overlap are removed as one span, so no fragment of either survives.
 */
export function createRedactor(secrets: ReadonlyMap<string, string>): Redactor {
  const needles: Array<{ needle: string; name: string; failure?: Int32Array }> = [];
  for (const [name, value] of secrets) {
    for (const form of encodedForms(value)) needles.push({ needle: form, name });
  }
  // Longest first: at one start the longest form names the span.
  needles.sort((a, b) => b.needle.length - a.needle.length);
  if (needles.length === 0) return { redact: (text) => ({ text, redacted: false }) };

  return {
    redact(text, truncated) {
      const replaced = replaceForms(text, needles, (name) => `[REDACTED:${name}]`);
      let redacted = replaced !== undefined;
      let out = replaced ?? text;
      if (truncated) {
        // Output was cut at the cap: a secret may have been cut in half. Drop the longest tail that
        // is the beginning of a secret form; losing a few innocent characters of cut output is
        // harmless. Found with each form's prefix function, linear in the form's length.
        let cut = 0;
        for (const entry of needles) {
          entry.failure ??= prefixFunction(entry.needle);
          cut = Math.max(cut, suffixPrefixOverlap(out, entry.needle, entry.failure));
        }
        if (cut > 0) {
          out = `${out.slice(0, out.length - cut)}[REDACTED:cut]`;
          redacted = true;
        }
      }
      return { text: out, redacted };
    },
  };
}

/** KMP prefix function: failure[i] = length of the longest proper border of needle[0..i]. */
function prefixFunction(needle: string): Int32Array {
  const failure = new Int32Array(needle.length);
  for (let i = 1, k = 0; i < needle.length; i++) {
    while (k > 0 && needle[i] !== needle[k]) k = failure[k - 1]!;
    if (needle[i] === needle[k]) k++;
    failure[i] = k;
  }
  return failure;
}

/** Length of the longest suffix of text that is a proper prefix of needle. */
function suffixPrefixOverlap(text: string, needle: string, failure: Int32Array): number {
  let k = 0;
  for (let i = Math.max(0, text.length - needle.length + 1); i < text.length; i++) {
    while (k > 0 && (k === needle.length || text[i] !== needle[k])) k = failure[k - 1]!;
    if (text[i] === needle[k]) k++;
  }
  return k < needle.length ? k : 0;
}

export function encodedForms(value: string): Set<string> {
  const bytes = Buffer.from(value, "utf8");
  const forms = new Set<string>([value]);
  forms.add(bytes.toString("hex"));
  forms.add(bytes.toString("hex").toUpperCase());
  forms.add(encodeURIComponent(value));
  forms.add(JSON.stringify(value).slice(1, -1));
  for (let shift = 0; shift < 3; shift++) {
    const encoded = Buffer.concat([Buffer.alloc(shift), bytes]).toString("base64");
    // Characters that mix in the shift bytes or whatever follows the secret are not stable.
    const start = shift === 0 ? 0 : shift + 1;
    const end = Math.floor(((shift + bytes.length) * 8) / 6);
    const core = encoded.slice(start, end);
    if (shift === 0) {
      forms.add(encoded);
      forms.add(encoded.replace(/=+$/, ""));
      forms.add(toUrlSafe(encoded).replace(/=+$/, ""));
    }
    if (core.length >= MIN_SHIFTED_LENGTH) {
      forms.add(core);
      forms.add(toUrlSafe(core));
    }
  }
  forms.delete("");
  return forms;
}

function toUrlSafe(b64: string): string {
  return b64.replace(/\+/g, "-").replace(/\//g, "_");
}

/**
 * Replaces every form `encodedForms` knows of each value with that value's replacement, in a byte
 * stream cut anywhere: the last (longest form - 1) bytes are held back until more arrive or the
 * stream ends, so a form split across chunks is still found. Bytes are handled as latin1 text
 * (one char per byte), the forms as the latin1 text of their UTF-8 bytes.
 */
export class StreamScrubber {
  /** `name` holds the replacement text (replaceForms' naming). */
  private readonly needles: Array<{ needle: string; name: string }>;
  private readonly hold: number;
  private carry = "";
  /** Whether anything was replaced so far. */
  scrubbed = false;

  constructor(pairs: ReadonlyArray<{ value: string; replacement: string }>) {
    this.needles = pairs
      .flatMap(({ value, replacement }) =>
        [...encodedForms(value)].map((form) => ({ needle: Buffer.from(form, "utf8").toString("latin1"), name: replacement })),
      )
      .sort((a, b) => b.needle.length - a.needle.length);
    this.hold = Math.max(0, ...this.needles.map((n) => n.needle.length - 1));
  }

  /** The scrubbed text of a whole string (headers). */
  text(value: string): string {
    return Buffer.from(this.replace(Buffer.from(value, "utf8").toString("latin1")), "latin1").toString("utf8");
  }

  push(chunk: Buffer): Buffer {
    const out = this.replace(this.carry + chunk.toString("latin1"));
    const keep = Math.min(this.hold, out.length);
    this.carry = out.slice(out.length - keep);
    return Buffer.from(out.slice(0, out.length - keep), "latin1");
  }

  end(): Buffer {
    const out = this.carry;
    this.carry = "";
    return Buffer.from(out, "latin1");
  }

  private replace(text: string): string {
    const out = replaceForms(text, this.needles, (replacement) => replacement);
    if (out === undefined) return text;
    this.scrubbed = true;
    return out;
  }
}

/**
 * Every occurrence of every needle (longest first at one start) replaced by `replacement(name)`;
 * occurrences that overlap are removed as one span, so no fragment of either survives. Undefined
 * when nothing was found. Literal search only (indexOf), linear in the text per needle.
 */
function replaceForms(
  text: string,
  needles: ReadonlyArray<{ needle: string; name: string }>,
  replacement: (name: string) => string,
): string | undefined {
  const spans: Array<{ start: number; end: number; name: string }> = [];
  for (const { needle, name } of needles) {
    for (let at = text.indexOf(needle); at !== -1; at = text.indexOf(needle, at + needle.length)) {
      spans.push({ start: at, end: at + needle.length, name });
    }
  }
  if (spans.length === 0) return undefined;
  spans.sort((a, b) => a.start - b.start || b.end - a.end);
  const parts: string[] = [];
  let pos = 0;
  for (let i = 0; i < spans.length; ) {
    const { start, name } = spans[i]!;
    let end = spans[i]!.end;
    for (i++; i < spans.length && spans[i]!.start < end; i++) end = Math.max(end, spans[i]!.end);
    parts.push(text.slice(pos, start), replacement(name));
    pos = end;
  }
  parts.push(text.slice(pos));
  return parts.join("");
}
