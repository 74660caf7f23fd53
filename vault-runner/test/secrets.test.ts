import { test } from "node:test";
import assert from "node:assert/strict";
import { chmodSync, mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { loadSecrets } from "../src/secrets.ts";
import { loadRunnerConfig } from "../src/config.ts";
import { tempDir } from "../../test/helpers/tmp.ts";

test("SECRETS_FILE (dotenv) and SECRETS_DIR (Docker secrets) load together", () => {
  const dir = tempDir();
  writeFileSync(join(dir, "secrets.env"), "# comment\nFOO=from-file\nQUOTED=\"a b#c\"\n", { mode: 0o600 });
  mkdirSync(join(dir, "d"));
  writeFileSync(join(dir, "d", "GITHUB_TOKEN"), "ghp_fromdir\n", { mode: 0o600 });
  writeFileSync(join(dir, "d", ".hidden"), "ignored");
  mkdirSync(join(dir, "d", "..data"));
  chmodSync(join(dir, "d"), 0o700);
  const { store, warnings } = loadSecrets({ secretsFile: join(dir, "secrets.env"), secretsDir: join(dir, "d") });
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
    assert.throws(() => loadSecrets({ secretsFile: file }), (err: Error) => {
      assert.match(err.message, message);
      assert.ok(!/value-(one|two)/.test(err.message), err.message);
      return true;
    });
  }
  const file = join(dir, "dup.env");
  writeFileSync(file, "DUP=secret-value-x\n", { mode: 0o600 });
  mkdirSync(join(dir, "dupdir"));
  writeFileSync(join(dir, "dupdir", "DUP"), "secret-value-y");
  assert.throws(() => loadSecrets({ secretsFile: file, secretsDir: join(dir, "dupdir") }), (err: Error) => {
    assert.match(err.message, /DUP is defined more than once/);
    assert.ok(!err.message.includes("secret-value"));
    return true;
  });
});

test("a world-readable secrets file is reported", () => {
  const dir = tempDir();
  writeFileSync(join(dir, "open.env"), "FOO=bar-value\n", { mode: 0o644 });
  chmodSync(join(dir, "open.env"), 0o644);
  const { warnings } = loadSecrets({ secretsFile: join(dir, "open.env") });
  assert.match(warnings.join(), /readable by every user/);
});

test("runner config: defaults, limits, and no Telegram variables", () => {
  const c = loadRunnerConfig({});
  assert.equal(c.maxTimeoutSeconds, 300);
  assert.match(c.socketPath, /data\/run\/runner\.sock$/);
  assert.throws(() => loadRunnerConfig({ TELEGRAM_CHAT_ID: "1" }), /TELEGRAM_CHAT_ID/);
  assert.throws(() => loadRunnerConfig({ RUNNER_MAX_TIMEOUT_SECONDS: "999999" }), /RUNNER_MAX_TIMEOUT_SECONDS/);
  assert.throws(() => loadRunnerConfig({ RUNNER_MAX_CONCURRENT: "zero" }), /RUNNER_MAX_CONCURRENT/);
});
