import { test } from "node:test";
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { createRedactor } from "../src/redact.ts";
import { MAX_SECRET_BYTES } from "../src/secrets.ts";

const SECRET = "sk-live-Zm9vYmFy+/q=12345";

test("redacts raw and encoded forms of each secret", () => {
  const r = createRedactor(
    new Map([
      ["API_KEY", SECRET],
      ["OTHER", "hunter2-other-value"],
    ]),
  );
  const b64 = Buffer.from(SECRET).toString("base64");
  const forms = [
    SECRET,
    b64,
    b64.replace(/=+$/, ""),
    b64.replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, ""),
    Buffer.from(SECRET).toString("hex"),
    Buffer.from(SECRET).toString("hex").toUpperCase(),
    encodeURIComponent(SECRET),
    // base64 of the secret embedded at every alignment inside a longer string
    Buffer.from(`x${SECRET}y`).toString("base64"),
    Buffer.from(`xy${SECRET}z`).toString("base64"),
    JSON.stringify({ key: "hunter2-other-value" }),
  ];
  for (const form of forms) {
    const { text, redacted } = r.redact(`before ${form} after`, false);
    assert.ok(redacted, form);
    assert.ok(!text.includes(SECRET) && !text.includes("hunter2-other-value"), text);
    for (const plain of [SECRET, "hunter2-other-value"]) {
      const b = Buffer.from(plain).toString("base64").slice(4, -4);
      assert.ok(!text.includes(b), `base64 core of ${plain} survived in ${text}`);
    }
  }
  assert.deepEqual(r.redact("nothing to see", false), { text: "nothing to see", redacted: false });
});

test("a secret cut in half by the output cap is removed too", () => {
  const r = createRedactor(new Map([["API_KEY", SECRET]]));
  const { text, redacted } = r.redact(`output ${SECRET.slice(0, 9)}`, true);
  assert.ok(redacted);
  assert.equal(text, "output [REDACTED:cut]");
});

test("no secrets: output passes unchanged", () => {
  assert.deepEqual(createRedactor(new Map()).redact("abc", true), { text: "abc", redacted: false });
});

test("the largest secret the loader accepts (64 KiB) redacts in every form; one regex of them all would not compile", () => {
  const random = randomBytes(MAX_SECRET_BYTES).toString("base64").slice(0, MAX_SECRET_BYTES);
  const r = createRedactor(
    new Map([
      ["BIG", random],
      ["SMALL", SECRET],
    ]),
  );
  const forms = [
    random,
    Buffer.from(random).toString("hex"),
    Buffer.from(random).toString("base64"),
    Buffer.from(`xy${random}`).toString("base64"),
    encodeURIComponent(random),
  ];
  for (const form of forms) {
    const { text, redacted } = r.redact(`a ${form} b ${SECRET} c`, false);
    assert.ok(redacted);
    assert.equal(text.length < 200, true, `${form.slice(0, 20)}…: ${text.slice(0, 200)}`);
    assert.match(text, /^a .*\[REDACTED:BIG\].* b \[REDACTED:SMALL\] c$/);
  }
  // Cut by the output cap anywhere inside: the whole tail goes.
  const { text } = r.redact(`out: ${random.slice(0, 40_000)}`, true);
  assert.equal(text, "out: [REDACTED:cut]");
});

test("overlapping forms of two secrets go as one span; nothing of either survives", () => {
  const r = createRedactor(
    new Map([
      ["A", "abcdef-secret-A"],
      ["B", "secret-A-and-B-tail"],
    ]),
  );
  const { text } = r.redact("x abcdef-secret-A-and-B-tail y", false);
  assert.equal(text, "x [REDACTED:A] y");
});
