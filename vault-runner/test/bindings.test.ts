import assert from "node:assert/strict";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import { runBindingsDigest, describeBinding, parseBinding, parseBindingLines } from "../src/bindings.ts";
import { loadSecrets } from "../src/secrets.ts";
import { tempDir } from "../../test/helpers/tmp.ts";

test("the binding grammar: hosts with ports, header (with a scheme), query, body; env", () => {
  assert.deepEqual(parseBinding("ANTHROPIC_API_KEY", "Api.Anthropic.com:443  header:X-Api-Key", "t"), {
    name: "ANTHROPIC_API_KEY",
    mode: "placeholder",
    hosts: ["api.anthropic.com:443"],
    places: [{ kind: "header", name: "x-api-key" }],
  });
  assert.deepEqual(
    parseBinding("GITHUB_TOKEN", "api.github.com:443,uploads.github.com:443 header:authorization:Bearer,query:access_token,body", "t"),
    {
      name: "GITHUB_TOKEN",
      mode: "placeholder",
      hosts: ["api.github.com:443", "uploads.github.com:443"],
      places: [{ kind: "header", name: "authorization", scheme: "Bearer" }, { kind: "query", name: "access_token" }, { kind: "body" }],
    },
  );
  assert.deepEqual(parseBinding("AWS_SECRET_ACCESS_KEY", " env ", "t"), { name: "AWS_SECRET_ACCESS_KEY", mode: "env" });
  assert.equal(
    describeBinding(parseBinding("K", "a.example.com:8443 header:authorization:token", "t")),
    "a.example.com:8443 header:authorization:token",
  );
  assert.equal(describeBinding({ name: "K", mode: "env" }), "env (the skill sees the real value)");
  const ws = parseBinding("WS_TOKEN", "stream.example.com:443 query:token,websocket", "t");
  assert.deepEqual(ws, {
    name: "WS_TOKEN",
    mode: "placeholder",
    hosts: ["stream.example.com:443"],
    places: [{ kind: "query", name: "token" }, { kind: "websocket" }],
  });
  assert.equal(describeBinding(ws), "stream.example.com:443 query:token,websocket");
});

test("bad bindings are refused with the secret and the bad part named", () => {
  const cases: Array<[string, RegExp]> = [
    ["api.example.com header:x-key", /needs its port \(e\.g\. api\.example\.com:443\)/],
    ["127.0.0.1:443 header:x-key", /IP literals/],
    ["localhost:443 header:x-key", /localhost|at least one dot/],
    ["api.example.com:443", /must be/],
    ["api.example.com:443 header:host", /host cannot carry a secret/],
    ["api.example.com:443 header:content-length", /cannot carry/],
    ["api.example.com:443 cookie:x", /place "cookie:x" must be .*, body or websocket/],
    ["api.example.com:443 header:x-key extra", /must be/],
    ["*.example.com:443 header:x-key", /wildcard/],
  ];
  for (const [text, why] of cases) {
    assert.throws(
      () => parseBinding("KEY", text, "bindings.conf line 3"),
      (e: Error) => /binding for KEY in bindings\.conf line 3/.test(e.message) && why.test(e.message),
      text,
    );
  }
  assert.throws(() => parseBinding("lower", "env", "t"), /must match/);
  assert.throws(() => parseBindingLines("GOOD env\njust-one-word\n", "f"), /f line 2: not "NAME/);
});

test("lines: comments, blank lines, ';' separators (RUNNER_BINDINGS), one binding per secret", () => {
  const b = parseBindingLines("# ours\nA  a.example.com:443 header:x-a  # trailing\n\nB env;C c.example.com:443 query:key", "f");
  assert.deepEqual(
    b.map((x) => x.name),
    ["A", "B", "C"],
  );
  const dir = tempDir();
  writeFileSync(join(dir, "s.env"), "A=aaaa-value\nB=bbbb-value\n", { mode: 0o600 });
  writeFileSync(join(dir, "b.conf"), "A a.example.com:443 header:x-a\n");
  assert.throws(
    () => loadSecrets({ secretsFile: join(dir, "s.env"), bindingsFile: join(dir, "b.conf"), bindingsEnv: "A env;B env" }),
    /secret A is bound more than once \(again in RUNNER_BINDINGS\)/,
  );
  const { store, warnings } = loadSecrets({
    secretsFile: join(dir, "s.env"),
    bindingsFile: join(dir, "b.conf"),
    bindingsEnv: "B env;TYPO env",
  });
  assert.equal(store.binding("A")?.mode, "placeholder");
  assert.equal(store.binding("B")?.mode, "env");
  assert.deepEqual(warnings, ["bindings for secrets that are not loaded: TYPO"]);
});

test("a secret without a binding does not load: the message shows the exact line to add, never the value", () => {
  const dir = tempDir();
  writeFileSync(join(dir, "s.env"), "GITHUB_TOKEN=ghp_unbound_value_1\nMY_KEY=my-unbound-value-2\n", { mode: 0o600 });
  assert.throws(
    () => loadSecrets({ secretsFile: join(dir, "s.env") }),
    (e: Error) =>
      e.message.includes("add to ./bindings.conf") &&
      e.message.includes("\n  GITHUB_TOKEN  api.github.com:443  header:authorization:Bearer\n") &&
      e.message.includes("\n  MY_KEY  <host>:443  header:<header-name>\n") &&
      e.message.includes('"<NAME>  env"') &&
      !e.message.includes("unbound_value") &&
      !e.message.includes("unbound-value"),
  );
});

test('SECRETS_JSON carries a binding in "bind"; other fields are still refused', () => {
  const { store } = loadSecrets({
    secretsJson: JSON.stringify({
      ANTHROPIC_API_KEY: { value: "sk-ant-json-1", bind: "api.anthropic.com:443 header:x-api-key" },
      SIG: { value: "v", bind: "env" },
    }),
  });
  assert.deepEqual(store.binding("ANTHROPIC_API_KEY"), {
    name: "ANTHROPIC_API_KEY",
    mode: "placeholder",
    hosts: ["api.anthropic.com:443"],
    places: [{ kind: "header", name: "x-api-key" }],
  });
  assert.throws(
    () => loadSecrets({ secretsJson: JSON.stringify({ K: { value: "v", hosts: ["x"] } }) }),
    /fields this runner does not know \(hosts\)/,
  );
  assert.throws(() => loadSecrets({ secretsJson: JSON.stringify({ K: { value: "v", bind: 7 } }) }), /"bind" must be a string/);
  assert.throws(() => loadSecrets({ secretsJson: JSON.stringify({ K: "v" }) }), /K has no binding/);
});

test("the bindings digest changes with any binding of the named secrets, and only with those", () => {
  const m = new Map(parseBindingLines("A a.example.com:443 header:x-a\nB env", "f").map((b) => [b.name, b]));
  const before = runBindingsDigest(m, ["A"]);
  assert.match(before, /^[0-9a-f]{64}$/);
  assert.equal(runBindingsDigest(m, ["A"]), before);
  const widened = new Map(m).set("A", parseBinding("A", "a.example.com:443,evil.example.com:443 header:x-a", "f"));
  assert.notEqual(runBindingsDigest(widened, ["A"]), before);
  const otherChanged = new Map(m).set("B", parseBinding("B", "b.example.com:443 header:x-b", "f"));
  assert.equal(runBindingsDigest(otherChanged, ["A"]), before);
});

test("the README's bindings example is valid bindings.conf text", () => {
  const readme = readFileSync(new URL("../../README.md", import.meta.url), "utf8");
  const block = /```\n(# NAME +host:port[^\n]*\n[\s\S]*?)```/.exec(readme)?.[1];
  assert.ok(block, "the example block is in the README");
  const parsed = parseBindingLines(block, "README.md");
  assert.ok(parsed.length >= 5);
  assert.ok(parsed.some((b) => b.mode === "env"));
  assert.ok(parsed.some((b) => b.mode === "placeholder" && b.places.some((p) => p.kind === "websocket")));
});
