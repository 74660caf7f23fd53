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

export function createRedactor(secrets: ReadonlyMap<string, string>): Redactor {
  const patterns: Array<{ needle: string; name: string }> = [];
  for (const [name, value] of secrets) {
    for (const form of encodedForms(value)) patterns.push({ needle: form, name });
  }
  // Longest first, so that a form containing another is replaced whole.
  patterns.sort((a, b) => b.needle.length - a.needle.length);
  if (patterns.length === 0) return { redact: (text) => ({ text, redacted: false }) };

  const byNeedle = new Map(patterns.map((p) => [p.needle, p.name] as const));
  const regex = new RegExp(patterns.map((p) => escapeRegExp(p.needle)).join("|"), "g");

  return {
    redact(text, truncated) {
      let redacted = false;
      let out = text.replace(regex, (match) => {
        redacted = true;
        return `[REDACTED:${byNeedle.get(match)}]`;
      });
      if (truncated) {
        // Output was cut at the cap: a secret may have been cut in half. Drop any tail that is the
        // beginning of a secret form; losing a few innocent characters of cut output is harmless.
        for (const { needle } of patterns) {
          for (let len = Math.min(needle.length - 1, out.length); len > 0; len--) {
            if (out.endsWith(needle.slice(0, len))) {
              out = `${out.slice(0, out.length - len)}[REDACTED:cut]`;
              redacted = true;
              break;
            }
          }
        }
      }
      return { text: out, redacted };
    },
  };
}

function encodedForms(value: string): Set<string> {
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

function escapeRegExp(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}
