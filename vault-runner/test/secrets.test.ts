import { test } from "node:test";
import assert from "node:assert/strict";
import { chmodSync, mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { parse } from "dotenv";
import { loadSecrets, MAX_SECRET_BYTES } from "../src/secrets.ts";
import { loadRunnerConfig } from "../src/config.ts";
import { tempDir } from "../../test/helpers/tmp.ts";

/** These tests are about reading values: every name they load is bound "env" (bindings.test.ts tests bindings). */
const ENV_BOUND = "FOO QUOTED GITHUB_TOKEN A B C D E F BIG ANTHROPIC_API_KEY FROM_FILE X Y".split(" ");
const load = (sources: Parameters<typeof loadSecrets>[0]) => {
  const r = loadSecrets({ bindingsEnv: ENV_BOUND.map((n) => `${n} env`).join(";"), ...sources });
  return { ...r, warnings: r.warnings.filter((w) => !w.startsWith("bindings for secrets that are not loaded")) };
};

test("SECRETS_FILE (dotenv) and SECRETS_DIR (Docker secrets) load together", () => {
  const dir = tempDir();
  writeFileSync(join(dir, "secrets.env"), '# comment\nFOO=from-file\nQUOTED="a b#c"\n', { mode: 0o600 });
  mkdirSync(join(dir, "d"));
  writeFileSync(join(dir, "d", "GITHUB_TOKEN"), "ghp_fromdir\n", { mode: 0o600 });
  writeFileSync(join(dir, "d", ".hidden"), "ignored");
  mkdirSync(join(dir, "d", "..data"));
  chmodSync(join(dir, "d"), 0o700);
  const { store, warnings } = load({ secretsFile: join(dir, "secrets.env"), secretsDir: join(dir, "d") });
  assert.deepEqual(store.names(), ["FOO", "GITHUB_TOKEN", "QUOTED"]);
  assert.deepEqual([...store.valuesFor(["GITHUB_TOKEN", "QUOTED"]).values()], ["ghp_fromdir", "a b#c"]);
  assert.deepEqual(warnings, []);
});

test("bad secrets stop start-up with a message that names the secret, never its value", () => {
  const dir = tempDir();
  const cases: Array<[string, RegExp]> = [
    ["lower=value-one-1", /must match/],
    ["HTTP_PROXY=value-two-2", /reserved/],
    ["EMPTY=", /EMPTY .* is empty/],
  ];
  for (const [line, message] of cases) {
    const file = join(dir, `s${Math.random()}.env`);
    writeFileSync(file, `${line}\n`, { mode: 0o600 });
    assert.throws(
      () => load({ secretsFile: file }),
      (err: Error) => {
        assert.match(err.message, message);
        assert.ok(!/value-(one|two)/.test(err.message), err.message);
        return true;
      },
    );
  }
  const file = join(dir, "dup.env");
  writeFileSync(file, "DUP=secret-value-x\n", { mode: 0o600 });
  mkdirSync(join(dir, "dupdir"));
  writeFileSync(join(dir, "dupdir", "DUP"), "secret-value-y");
  assert.throws(
    () => load({ secretsFile: file, secretsDir: join(dir, "dupdir") }),
    (err: Error) => {
      assert.match(err.message, /DUP is defined more than once/);
      assert.ok(!err.message.includes("secret-value"));
      return true;
    },
  );
});

test("the secrets file is read strictly: a repeated name, an unquoted #, a line dotenv would skip and an open quote are refused", () => {
  const dir = tempDir();
  const cases: Array<[string, RegExp]> = [
    // dotenv alone: keeps the last value silently
    ["DUP=value-one-1\nDUP=value-two-2", /secret DUP is defined more than once .* \(line 2\)/],
    // dotenv alone: the secret silently becomes "value-one-1"
    ["CUT=value-one-1 #value-two-2", /secret CUT .*line 1.* unquoted value holds "#".*quote the value/],
    ["CUT=value-one-1#value-two-2", /unquoted value holds "#"/],
    // dotenv alone: the line is skipped and the secret missing, with no word
    ["GOOD=x\nTYPO value-one-1", /line 2: not NAME=value/],
    ['OPEN="value-one-1\nNEXT=value-two-2', /secret OPEN .* the quote is never closed/],
    ['AFTER="value-one-1" value-two-2', /text after the closing quote/],
  ];
  for (const [text, message] of cases) {
    const file = join(dir, `s${Math.random()}.env`);
    writeFileSync(file, `${text}\n`, { mode: 0o600 });
    assert.throws(
      () => load({ secretsFile: file }),
      (err: Error) => {
        assert.match(err.message, message);
        assert.ok(!/value-(one|two)/.test(err.message), err.message);
        return true;
      },
      text,
    );
  }
  // What stays accepted, exactly as dotenv reads it.
  const file = join(dir, "ok.env");
  const text = 'A=1\nB="two words" # note\nexport C=\'x # y\'\nD="multi\nline"\nE="nl\\n"\nF=  spaced  \n';
  writeFileSync(file, text, { mode: 0o600 });
  const { store } = load({ secretsFile: file });
  assert.deepEqual(Object.fromEntries(store.valuesFor(store.names())), parse(text));
});

test("a secret over 64 KiB is refused at load, naming it and the limit; 64 KiB loads", () => {
  const dir = tempDir();
  const big = "k".repeat(MAX_SECRET_BYTES);
  writeFileSync(join(dir, "ok.env"), `BIG=${big}\n`, { mode: 0o600 });
  assert.equal(
    load({ secretsFile: join(dir, "ok.env") })
      .store.valuesFor(["BIG"])
      .get("BIG"),
    big,
  );
  writeFileSync(join(dir, "big.env"), `BIG=${big}é\n`, { mode: 0o600 });
  assert.throws(
    () => load({ secretsFile: join(dir, "big.env") }),
    (err: Error) => {
      assert.match(err.message, /secret BIG .* is 65538 bytes; the most a secret may hold is 65536 bytes/);
      assert.ok(!err.message.includes("kkkk"));
      return true;
    },
  );
  assert.throws(() => load({ secretsJson: JSON.stringify({ BIG: `${big}x` }) }), /BIG in SECRETS_JSON is 65537 bytes/);
});

test("a world-readable secrets file is reported", () => {
  const dir = tempDir();
  writeFileSync(join(dir, "open.env"), "FOO=bar-value\n", { mode: 0o644 });
  chmodSync(join(dir, "open.env"), 0o644);
  const { warnings } = load({ secretsFile: join(dir, "open.env") });
  assert.match(warnings.join(), /readable by every user/);
});

test("runner config: defaults, limits, and no Telegram variables", () => {
  const c = loadRunnerConfig({});
  assert.equal(c.maxTimeoutSeconds, 300);
  assert.match(c.socketPath, /data\/run\/runner\.sock$/);
  assert.throws(() => loadRunnerConfig({ TELEGRAM_CHAT_ID: "1" }), /TELEGRAM_CHAT_ID/);
  assert.throws(() => loadRunnerConfig({ RUNNER_MAX_TIMEOUT_SECONDS: "999999" }), /RUNNER_MAX_TIMEOUT_SECONDS/);
  assert.throws(() => loadRunnerConfig({ RUNNER_MAX_CONCURRENT: "zero" }), /RUNNER_MAX_CONCURRENT/);
  const lists = loadRunnerConfig({
    RUNNER_EGRESS_ALLOW_PRIVATE: " Api.Local:443 ,",
    RUNNER_EGRESS_HOSTS: "api.example=127.0.0.1, b.example=::1",
  });
  assert.deepEqual([...lists.egressAllowPrivate], ["api.local:443"]);
  assert.deepEqual(
    [...lists.egressHosts],
    [
      ["api.example", "127.0.0.1"],
      ["b.example", "::1"],
    ],
  );
  assert.throws(
    () => loadRunnerConfig({ RUNNER_EGRESS_HOSTS: "api.example=127.0.0.1,api.example" }),
    /"api\.example" must be name=address/,
  );
});

test("SECRETS_JSON (the Phala env path): strings or {value}, plain or base64, together with the file and dir", () => {
  const dir = tempDir();
  writeFileSync(join(dir, "s.env"), "FROM_FILE=file-value-1\n", { mode: 0o600 });
  const doc = { ANTHROPIC_API_KEY: "sk-ant-json-value", GITHUB_TOKEN: { value: 'ghp_json "quoted" #hash\nline2' } };
  for (const text of [JSON.stringify(doc), `  ${JSON.stringify(doc, null, 2)}\n`, Buffer.from(JSON.stringify(doc)).toString("base64")]) {
    const { store } = load({ secretsFile: join(dir, "s.env"), secretsJson: text });
    assert.deepEqual(store.names(), ["ANTHROPIC_API_KEY", "FROM_FILE", "GITHUB_TOKEN"]);
    assert.deepEqual(
      [...store.valuesFor(["ANTHROPIC_API_KEY", "GITHUB_TOKEN"]).values()],
      ["sk-ant-json-value", 'ghp_json "quoted" #hash\nline2'],
    );
  }
  assert.equal(loadRunnerConfig({ SECRETS_JSON: "{}" }).secretsJson, "{}");
});

test("bad SECRETS_JSON stops start-up naming the secret and the problem, never a value or the text", () => {
  const cases: Array<[string, RegExp]> = [
    ['{"FOO": "json-value-aaa", BROKEN', /neither a JSON object nor base64 of one/],
    ["not base64 json-value-bbb !!", /neither a JSON object nor base64/],
    ['["json-value-ccc"]', /neither a JSON object|must be a JSON object/],
    ['{"FOO": 12345}', /secret FOO must be a string or \{"value"/],
    ['{"FOO": {"value": "json-value-ddd", "hosts": ["api.example.com"]}}', /secret FOO has fields this runner does not know \(hosts\)/],
    ['{"lower": "json-value-eee"}', /SECRETS_JSON: .*must match/],
    ['{"HTTP_PROXY": "json-value-fff"}', /reserved/],
    ['{"EMPTY": ""}', /EMPTY in SECRETS_JSON is empty/],
  ];
  for (const [text, message] of cases) {
    assert.throws(
      () => load({ secretsJson: text }),
      (err: Error) => {
        assert.match(err.message, message);
        assert.ok(!err.message.includes("json-value"), err.message);
        return true;
      },
      text,
    );
  }
  const dir = tempDir();
  writeFileSync(join(dir, "s.env"), "FOO=file-value\n", { mode: 0o600 });
  assert.throws(
    () => load({ secretsFile: join(dir, "s.env"), secretsJson: '{"FOO": "json-value-ggg"}' }),
    /FOO is defined more than once \(SECRETS_JSON\)/,
  );
});
