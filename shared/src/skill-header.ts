/**
 * The upstream skill header: tags in the comment block at the top of the file, one per line.
 *
 *   // @skill weather
 *   // @description Looks up the weather
 *   // @secrets WEATHER_API_KEY
 *   // @network api.weather.example
 *   // @timeout 20
 *
 * Only the leading comment block counts: a tag further down cannot change what the approver saw.
 * Lists (`@secrets`, `@network`) may repeat and may hold several comma- or space-separated items.
 * A list tag that never appears is `undefined` (not declared), which differs from an empty list.
 */
export interface SkillHeader {
  name?: string;
  description?: string;
  secrets?: string[];
  network?: string[];
  timeoutSeconds?: string;
}

const COMMENT_LINE = /^\s*(?:\/\/+|\/\*+|\*+\/?|\*\/)?\s*(.*?)\s*(?:\*\/)?\s*$/;
const TAG = /^@([a-z]+)\b\s*(.*)$/;

export function parseSkillHeader(code: string): SkillHeader {
  const header: SkillHeader = {};
  const lines = code.replace(/^\uFEFF/, "").split(/\r?\n/);
  let inBlock = false;
  for (const line of lines) {
    const trimmed = line.trim();
    if (trimmed === "" || trimmed.startsWith("#!")) continue;
    const isComment = inBlock || trimmed.startsWith("//") || trimmed.startsWith("/*");
    if (!isComment) break;
    if (trimmed.startsWith("/*")) inBlock = true;
    if (trimmed.includes("*/")) inBlock = false;
    const text = COMMENT_LINE.exec(trimmed)?.[1] ?? "";
    const tag = TAG.exec(text);
    if (!tag) continue;
    const [, key, value = ""] = tag;
    switch (key) {
      case "skill":
        header.name ??= value;
        break;
      case "description":
        header.description = header.description ? `${header.description} ${value}` : value;
        break;
      case "secrets":
      case "secret":
        header.secrets = [...(header.secrets ?? []), ...splitList(value)];
        break;
      case "network":
        header.network = [...(header.network ?? []), ...splitList(value)];
        break;
      case "timeout":
        header.timeoutSeconds ??= value;
        break;
      default:
        break; // unknown tags are ignored, as upstream did
    }
  }
  return header;
}

function splitList(value: string): string[] {
  return value.split(/[\s,]+/).filter((item) => item.length > 0);
}
