import { test } from "node:test";
import assert from "node:assert/strict";
import { encodeRequestAction, encodeRevoke, nonceMatches, parseCallbackData } from "../src/telegram/callback-data.ts";
import { approvalStatement, LIMITS, renderStatementText, sanitize } from "@oauth3/shared";
import {
  cleanText,
  MAX_FOOTER,
  MAX_MESSAGE,
  renderCard,
  renderDecisionFooter,
  renderGrantReport,
  renderOutcome,
  telegramLength,
  type SandboxInfo,
} from "../src/telegram/render.ts";
import type { ExecRequest } from "../src/store/store.ts";

const NONCE = "AbCdEfGhIjKlMnOpQrStUv";

/** The card as the channel renders it: from the request's approval statement. */
function cardOf(r: ExecRequest, code: string, sandbox?: SandboxInfo, footer = "") {
  return renderCard(approvalStatement(r, code, sandbox), code, footer);
}

test("callback data: round trip within 64 bytes; anything else is refused", () => {
  for (const kind of ["approve", "deny", "grant"] as const) {
    const data = encodeRequestAction(kind, "exec_0123456789abcdef", NONCE);
    assert.ok(Buffer.byteLength(data) <= 64);
    assert.deepEqual(parseCallbackData(data), { kind, requestId: "exec_0123456789abcdef", nonce: NONCE });
  }
  assert.deepEqual(parseCallbackData(encodeRevoke("0123456789ab", NONCE)), { kind: "revoke", grantId: "0123456789ab", nonce: NONCE });
  for (const bad of [
    undefined,
    "",
    "a:0123456789abcdef",
    `x:0123456789abcdef:${NONCE}`,
    `a:0123456789ABCDEF:${NONCE}`,
    `a:0123456789abcdef:${NONCE}x`,
    `a:0123456789abcdef:${NONCE}\n`,
    `approve:exec_0123456789abcdef:once`,
    `r:0123456789a:${NONCE}`,
    `a:../../etc/passwd:${NONCE}`,
    "a".repeat(65),
  ]) {
    assert.equal(parseCallbackData(bad), undefined, String(bad));
  }
  assert.ok(nonceMatches(NONCE, NONCE));
  assert.ok(!nonceMatches(NONCE, `${NONCE.slice(0, -1)}X`));
  assert.ok(!nonceMatches(NONCE, NONCE.slice(1)));
});

test("cleanText: escapes HTML, replaces invisible characters visibly, flags them", () => {
  assert.deepEqual(cleanText(`<a href="x">&</a>`, 100), { html: "&lt;a href=&quot;x&quot;&gt;&amp;&lt;/a&gt;", flagged: false });
  const cases: Array<[string, string]> = [
    ["\u202e", "\\u202e"],
    ["\u2066", "\\u2066"],
    ["\u200b", "\\u200b"],
    ["\u200d", "\\u200d"],
    ["\ufeff", "\\ufeff"],
    ["\u0007", "\\u0007"],
    ["\u061c", "\\u061c"],
    ["\u001b", "\\u001b"],
    ["\r", "\\u000d"],
    ["\n", "\\u000a"],
    ["\u2028", "\\u2028"],
    ["\u2029", "\\u2029"],
    ["\u{e0041}", "\\u{e0041}"],
    ["\ud800", "\\ud800"],
    ["\udfff", "\\udfff"],
    ["\u0085", "\\u0085"],
    ["\u3164", "\\u3164"],
    ["\ufe0f", "\\ufe0f"],
    ["\u{f0000}", "\\u{f0000}"],
  ];
  for (const [ch, shown] of cases) {
    const out = cleanText(`a${ch}b`, 100);
    assert.equal(out.html, `a${shown}b`, JSON.stringify(ch));
    assert.ok(out.flagged, JSON.stringify(ch));
  }
  // Ordinary text stays readable and unflagged.
  for (const ok of ["Zürich", "東京", "emoji 😀", "naïve café", "Ελληνικά"])
    assert.deepEqual(cleanText(ok, 100), { html: ok, flagged: false });
  assert.equal(cleanText("x".repeat(10), 4).html, "xxxx…");
});

function request(overrides: Partial<ExecRequest> = {}): ExecRequest {
  return {
    id: "exec_0123456789abcdef",
    status: "pending",
    skillId: "s",
    source: "data:",
    codeSha256: "a".repeat(64),
    codeSize: 10,
    secretNames: [],
    network: [],
    args: [],
    timeoutSeconds: 30,
    createdAt: 0,
    expiresAt: 600_000,
    ...overrides,
  };
}

/** A small seeded PRNG (mulberry32), so a failing case can be replayed from its seed. */
function prng(seed: number) {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

// What an agent or a skill may put in free and critical text: HTML, entities, bidi, separators,
// tag characters, private use, emoji (two UTF-16 units), combining marks, ESC/CR.
const NASTY = [
  "<",
  ">",
  "&",
  '"',
  "'",
  "a",
  "Z",
  "ü",
  "東",
  "😀",
  "\u202e",
  "\u2066",
  "\u2028",
  "\u2029",
  "\u{e0041}",
  "\u{f0000}",
  "\u0301",
  "\u001b",
  "\r",
  "\n",
  "\u200b",
  "&amp;",
  "<b>",
  "</code>",
  "\ufeff",
  " ",
];

function nasty(rand: () => number, max: number, alphabet = NASTY): string {
  const n = Math.floor(rand() * (max + 1));
  let out = "";
  for (let i = 0; i < n; i++) out += alphabet[Math.floor(rand() * alphabet.length)];
  return [...out].slice(0, max).join("");
}

test("property: every card and every edit keeps each critical line unabridged within Telegram's 4096 units", () => {
  const upper = "ABCDEFGHIJKLMNOPQRSTUVWXYZ_0123456789".split("");
  const label = "abcdefghijklmnopqrstuvwxyz0123456789".split("");
  for (let seed = 1; seed <= 400; seed++) {
    const rand = prng(seed);
    const worst = seed % 4 === 0; // every fourth case at every limit at once
    const count = (max: number) => (worst ? max : Math.floor(rand() * (max + 1)));
    const secretNames = Array.from({ length: count(LIMITS.maxSecrets) }, (_, i) =>
      `S${i}${nasty(rand, worst ? 62 : 20, upper)}`.slice(0, 64),
    );
    const network = Array.from({ length: count(LIMITS.maxHosts) }, (_, i) => {
      const host = `h${i}.${nasty(rand, 50, label) || "x"}.${nasty(rand, 30, label) || "y"}.example`;
      return `${host.slice(0, LIMITS.maxHostLength - 7)}:${worst ? 65535 : 443}`;
    });
    const skillIdAlphabet = NASTY.filter((c) => !/[\p{Cc}\p{Cf}]/u.test(c)); // intake refuses Cc/Cf in skill_id
    const r = request({
      skillId: (worst ? "\u{f0000}".repeat(64) : nasty(rand, LIMITS.maxSkillIdLength, skillIdAlphabet)) || "s",
      agent: "a".repeat(worst ? 64 : Math.floor(rand() * 65)) || undefined,
      skillName: nasty(rand, LIMITS.maxSkillIdLength),
      description: nasty(rand, worst ? 1024 : 300),
      source: nasty(rand, worst ? 2048 : 200),
      args: Array.from({ length: count(LIMITS.maxArgs) }, (_, i) => ({ name: `arg${i}`, value: nasty(rand, worst ? 8192 : 200) })),
      secretNames,
      network,
      codeSize: 262144,
      status: "completed",
      decidedAt: 1,
      decidedBy: "telegram:1234567890",
      completedAt: 2,
      result: {
        success: false,
        stdout: nasty(rand, 5000),
        stderr: "",
        exitCode: 1,
        duration: 5,
        reason: "exited",
        truncated: true,
        redacted: true,
        policy: {
          denoArgs: [],
          envNames: [],
          allowedHosts: [],
          timeoutSeconds: 30,
          denoVersion: "",
          isolation: "",
          egress: "",
          egressPrivateAllowed: [],
        },
      },
    });
    const code = nasty(rand, worst ? 3000 : 1200);
    const sandbox = { isolation: "shared-uid", egress: "deno-only" };
    assert.ok(telegramLength(renderDecisionFooter(r)) <= MAX_FOOTER, `seed ${seed}: footer ${telegramLength(renderDecisionFooter(r))}`);
    for (const footer of ["", renderDecisionFooter(r)]) {
      const card = cardOf(r, code, sandbox, footer);
      const html = card.html + footer;
      const where = `seed ${seed}${footer ? " (edit)" : ""}`;
      assert.ok(telegramLength(html) <= MAX_MESSAGE, `${where}: ${telegramLength(html)} units`);
      for (const line of [
        `Skill: <b>${cleanText(r.skillId, Infinity).html}</b>`,
        `Agent: ${r.agent ?? "unknown"}`,
        ...r.secretNames.map((n) => `  • <code>${n}</code>`),
        ...r.network.map((h) => `  • <code>${h}</code>`),
        `Timeout: 30 s`,
        `Code: 262144 bytes, sha256 <code>${"a".repeat(64)}</code>`,
        `Request: <code>exec_0123456789abcdef</code>`,
        "Expires: ",
        "Weaker sandbox",
      ])
        assert.ok(html.includes(line), `${where}: lacks ${line.slice(0, 80)}`);
      if (r.secretNames.length === 0) assert.ok(html.includes("Secrets: none"), where);
      if (r.network.length === 0) assert.ok(html.includes("Network: none"), where);
      // No raw invisible character survives anywhere on the card.
      assert.doesNotMatch(html, /[\u202e\u2066\u2028\u2029\u200b\ufeff\u001b\r]|\u{e0041}|\u{f0000}/u, where);
      if (/[\u202e\u2028\u{e0041}\u001b\u200b]/u.test(r.description + r.source + r.args.map((a) => a.value).join(""))) {
        assert.match(html, /Hidden or direction-changing characters/, where);
      }
      // Whatever was shortened is marked, and the full text goes to the details document.
      if (/\(cut: full text in the details document\)/.test(html)) assert.ok(card.details, where);
      if (card.details) assert.ok(card.details.includes(sanitize(r.source).text), `${where}: details hold the full source`);
    }
    // The same statement, on the other surfaces: the grant report (Telegram) and the operator CLI.
    const st = approvalStatement(r, code, sandbox);
    const report = renderGrantReport(st, "0123456789ab", 1, renderOutcome(r));
    assert.ok(telegramLength(report) <= MAX_MESSAGE, `seed ${seed}: grant report ${telegramLength(report)} units`);
    for (const line of [
      `Skill: <b>${cleanText(r.skillId, Infinity).html}</b>`,
      `Agent: ${r.agent ?? "unknown"}`,
      ...r.secretNames.map((n) => `  • <code>${n}</code>`),
      ...r.network.map((h) => `  • <code>${h}</code>`),
      `Code: 262144 bytes, sha256 <code>${"a".repeat(64)}</code>`,
      `Request: <code>exec_0123456789abcdef</code>`,
      "Weaker sandbox",
    ])
      assert.ok(report.includes(line), `seed ${seed}: the grant report lacks ${line.slice(0, 80)}`);
    const text = renderStatementText(st, { freeTextLimit: 200 });
    assert.doesNotMatch(
      text,
      /[\u0000-\u0009\u000b-\u001f\u007f-\u009f\u202e\u2066\u2028\u2029\u200b\ufeff]|\u{e0041}|\u{f0000}/u,
      `seed ${seed}: CLI`,
    );
    for (const fact of [
      `secrets:  ${r.secretNames.join(", ") || "none"}`,
      `network:  ${r.network.join(", ") || "none"}`,
      "timeout:  30 s",
      `code:     262144 bytes, sha256 ${"a".repeat(64)}`,
      "request exec_0123456789abcdef",
      `skill:    ${sanitize(JSON.stringify(r.skillId)).text}`,
      "WARNING: Weaker sandbox",
    ])
      assert.ok(text.includes(fact), `seed ${seed}: the CLI statement lacks ${fact.slice(0, 80)}`);
    if (st.flagged_fields.length) assert.match(text, /WARNING: Hidden or direction-changing characters/, `seed ${seed}: CLI`);
  }
});

test("cards: small code inline, long code as a document", () => {
  const small = cardOf(request(), "console.log('<hi>')");
  assert.ok(!small.codeAsDocument);
  assert.ok(small.html.includes("console.log('&lt;hi&gt;')"));
  assert.ok(!small.details);
  assert.ok(cardOf(request(), "x".repeat(5000)).codeAsDocument);
});

test("the card names the sandbox, and calls out a weaker one", () => {
  const strong = cardOf(request(), "1", { isolation: "per-run-uid", egress: "proxy+firewall" }).html;
  assert.match(strong, /Sandbox: own uid, egress only via the checking proxy/);
  assert.doesNotMatch(strong, /Weaker/);
  const weak = cardOf(request(), "1", { isolation: "shared-uid", egress: "deno-only" }).html;
  assert.match(weak, /⚠️ <b>Weaker sandbox<\/b>: isolation shared-uid, egress deno-only/);
});

test("/pending and /grants listings: sanitised skill ids, full hashes, split into messages without cutting a line", async () => {
  const { chunkLines, pendingLine } = await import("../src/telegram/render.ts");
  const line = pendingLine({
    id: "exec_0123456789abcdef",
    skillId: "a\u2028Secrets: none\u202e",
    codeSha256: "b".repeat(64),
    expiresAt: 0,
  });
  assert.doesNotMatch(line, /[\u2028\u202e]/u);
  assert.match(line, /a\\u2028Secrets: none\\u202e/);
  assert.ok(line.includes("b".repeat(64)), "the full hash");
  const lines = Array.from({ length: 60 }, (_, i) => `${line} #${i}`);
  const messages = chunkLines(lines, "\nRevoke with /revoke &lt;id&gt;");
  assert.ok(messages.length > 1);
  for (const m of messages) assert.ok(telegramLength(m) <= MAX_MESSAGE);
  assert.deepEqual(
    messages
      .join("\n")
      .split("\n")
      .filter((l) => l.startsWith("<code>")),
    lines,
    "every line, whole, in order",
  );
  assert.ok(messages.at(-1)!.endsWith("Revoke with /revoke &lt;id&gt;"));
});
