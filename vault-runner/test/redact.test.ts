import { test } from "node:test";
import assert from "node:assert/strict";
import { createRedactor } from "../src/redact.ts";

const SECRET = "sk-live-Zm9vYmFy+/q=12345";

test("redacts raw and encoded forms of each secret", () => {
  const r = createRedactor(new Map([["API_KEY", SECRET], ["OTHER", "hunter2-other-value"]]));
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
