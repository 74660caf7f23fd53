import { test } from "node:test";
import assert from "node:assert/strict";
import { encodeRequestAction, encodeRevoke, nonceMatches, parseCallbackData } from "../src/telegram/callback-data.ts";
import { cleanText, fitMessage, MAX_MESSAGE, renderCard, renderDecisionFooter } from "../src/telegram/render.ts";
import type { ExecRequest } from "../src/store.ts";

const NONCE = "AbCdEfGhIjKlMnOpQrStUv";

test("callback data: round trip within 64 bytes; anything else is refused", () => {
  for (const kind of ["approve", "deny", "grant"] as const) {
    const data = encodeRequestAction(kind, "exec_0123456789abcdef", NONCE);
    assert.ok(Buffer.byteLength(data) <= 64);
    assert.deepEqual(parseCallbackData(data), { kind, requestId: "exec_0123456789abcdef", nonce: NONCE });
  }
  assert.deepEqual(parseCallbackData(encodeRevoke("0123456789ab", NONCE)), { kind: "revoke", grantId: "0123456789ab", nonce: NONCE });
  for (const bad of [undefined, "", "a:0123456789abcdef", `x:0123456789abcdef:${NONCE}`, `a:0123456789ABCDEF:${NONCE}`,
    `a:0123456789abcdef:${NONCE}x`, `a:0123456789abcdef:${NONCE}\n`, `approve:exec_0123456789abcdef:once`, `r:0123456789a:${NONCE}`,
    `a:../../etc/passwd:${NONCE}`, "a".repeat(65)]) {
    assert.equal(parseCallbackData(bad), undefined, String(bad));
  }
  assert.ok(nonceMatches(NONCE, NONCE));
  assert.ok(!nonceMatches(NONCE, `${NONCE.slice(0, -1)}X`));
  assert.ok(!nonceMatches(NONCE, NONCE.slice(1)));
});

test("cleanText: escapes HTML, replaces invisible characters visibly, flags them", () => {
  assert.deepEqual(cleanText(`<a href="x">&</a>`, 100), { html: "&lt;a href=&quot;x&quot;&gt;&amp;&lt;/a&gt;", flagged: false });
  const cases: Array<[string, string]> = [
    ["\u202e", "\\u202e"], ["\u2066", "\\u2066"], ["\u200b", "\\u200b"], ["\u200d", "\\u200d"], ["\ufeff", "\\ufeff"],
    ["\u0007", "\\u0007"], ["\u061c", "\\u061c"], ["\u001b", "\\u001b"], ["\r", "\\u000d"], ["\n", "\\u000a"],
    ["\u2028", "\\u2028"], ["\u2029", "\\u2029"], ["\u{e0041}", "\\u{e0041}"], ["\ud800", "\\ud800"], ["\udfff", "\\udfff"],
    ["\u0085", "\\u0085"], ["\u3164", "\\u3164"], ["\ufe0f", "\\ufe0f"], ["\u{f0000}", "\\u{f0000}"],
  ];
  for (const [ch, shown] of cases) {
    const out = cleanText(`a${ch}b`, 100);
    assert.equal(out.html, `a${shown}b`, JSON.stringify(ch));
    assert.ok(out.flagged, JSON.stringify(ch));
  }
  // Ordinary text stays readable and unflagged.
  for (const ok of ["Zürich", "東京", "emoji 😀", "naïve café", "Ελληνικά"]) assert.deepEqual(cleanText(ok, 100), { html: ok, flagged: false });
  assert.equal(cleanText("x".repeat(10), 4).html, "xxxx…");
});

function request(overrides: Partial<ExecRequest> = {}): ExecRequest {
  return {
    id: "exec_0123456789abcdef", status: "pending", skillId: "s", source: "data:", codeSha256: "a".repeat(64), codeSize: 10,
    secretNames: [], network: [], args: [], timeoutSeconds: 30, createdAt: 0, expiresAt: 600_000, ...overrides,
  };
}

test("cards stay within Telegram's limit whatever the agent sends", () => {
  const huge = request({
    skillId: "s".repeat(128),
    description: "d".repeat(1024),
    args: Array.from({ length: 32 }, (_, i) => ({ name: `arg${i}`, value: "<".repeat(8192) })),
    secretNames: Array.from({ length: 32 }, (_, i) => `SECRET_${i}`),
    network: Array.from({ length: 16 }, (_, i) => `host${i}.example.com:443`),
    status: "completed", decidedAt: 1, decidedBy: "telegram:1", completedAt: 2,
    result: { success: false, stdout: "&".repeat(5000), stderr: "", exitCode: 1, duration: 5, reason: "exited", truncated: false, redacted: false,
      policy: { denoArgs: [], envNames: [], allowedHosts: [], timeoutSeconds: 30, denoVersion: "", isolation: "", egress: "", egressPrivateAllowed: [] } },
  });
  const card = renderCard(huge, "console.log(1)");
  const full = fitMessage(card.html + renderDecisionFooter(huge));
  assert.ok([...full].length <= MAX_MESSAGE, `${[...full].length} chars`);
  assert.ok(!/&[a-z]*…/.test(full), "no entity cut in half");
  const small = renderCard(request(), "console.log('<hi>')");
  assert.ok(!small.codeAsDocument);
  assert.ok(small.html.includes("console.log('&lt;hi&gt;')"));
  assert.ok(renderCard(request(), "x".repeat(5000)).codeAsDocument);
});

test("the card names the sandbox, and calls out a weaker one", () => {
  const strong = renderCard(request(), "1", { isolation: "per-run-uid", egress: "proxy+firewall" }).html;
  assert.match(strong, /Sandbox: own uid, egress only via the checking proxy/);
  assert.doesNotMatch(strong, /Weaker/);
  const weak = renderCard(request(), "1", { isolation: "shared-uid", egress: "deno-only" }).html;
  assert.match(weak, /⚠️ <b>Weaker sandbox<\/b>: isolation shared-uid, egress deno-only/);
});
