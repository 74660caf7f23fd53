import { test } from "node:test";
import assert from "node:assert/strict";
import { loadGatewayConfig } from "../src/config.ts";

test("gateway config: upstream names keep their meaning, bad values are clear errors", () => {
  const c = loadGatewayConfig({ PORT: "8080", DB_PATH: "/var/lib/x", TELEGRAM_BOT_TOKEN: "1:abc", TELEGRAM_CHAT_ID: "-100123" });
  assert.equal(c.port, 8080);
  assert.equal(c.dbPath, "/var/lib/x");
  assert.deepEqual(c.telegram, {
    token: "1:abc",
    chatId: -100123,
    approverIds: new Set(),
    apiRoot: "https://api.telegram.org",
    webhook: undefined,
  });
  // A private chat's id is its user's id: that user approves by default.
  assert.deepEqual(loadGatewayConfig({ TELEGRAM_BOT_TOKEN: "1:a", TELEGRAM_CHAT_ID: "42" }).telegram?.approverIds, new Set([42]));
  const explicit = loadGatewayConfig({
    TELEGRAM_BOT_TOKEN: "1:a",
    TELEGRAM_CHAT_ID: "-5",
    TELEGRAM_APPROVER_IDS: "1, 2",
    TELEGRAM_API_ROOT: "http://127.0.0.1:8081/",
  });
  assert.deepEqual(explicit.telegram?.approverIds, new Set([1, 2]));
  assert.equal(explicit.telegram?.apiRoot, "http://127.0.0.1:8081");
  assert.throws(() => loadGatewayConfig({ TELEGRAM_APPROVER_IDS: "@me" }), /TELEGRAM_APPROVER_IDS/);
  assert.throws(() => loadGatewayConfig({ TELEGRAM_API_ROOT: "ftp://x" }), /TELEGRAM_API_ROOT/);
  assert.throws(() => loadGatewayConfig({ TELEGRAM_WEBHOOK_URL: "https://x.example/wh" }), /needs TELEGRAM_WEBHOOK_SECRET/);
  assert.equal(loadGatewayConfig({ AGENT_TOKENS: `a:${"0".repeat(64)}, b:${"f".repeat(64)}` }).agentTokens.size, 2);
  assert.throws(() => loadGatewayConfig({ AGENT_TOKENS: "a:plaintext-token" }), /AGENT_TOKENS/);
  assert.equal(loadGatewayConfig({ AUDIT_TOKENS: `auditor:${"1".repeat(64)}` }).auditTokens.get("auditor"), "1".repeat(64));
  assert.throws(() => loadGatewayConfig({ AUDIT_TOKENS: "auditor" }), /AUDIT_TOKENS/);
  assert.throws(
    () => loadGatewayConfig({ AGENT_TOKENS: `a:${"2".repeat(64)}`, AUDIT_TOKENS: `b:${"2".repeat(64)}` }),
    /a token is in both AGENT_TOKENS and AUDIT_TOKENS/,
  );
  // compose passes unset ${VAR:-} as "": that is "not set".
  const blank = loadGatewayConfig({ TELEGRAM_BOT_TOKEN: "", TELEGRAM_CHAT_ID: "", TELEGRAM_APPROVER_IDS: "", PORT: "" });
  assert.equal(blank.telegram, undefined);
  assert.equal(blank.port, 3737);
  assert.throws(() => loadGatewayConfig({ TELEGRAM_WEBHOOK_URL: "https://x.example/wh", TELEGRAM_WEBHOOK_SECRET: "short" }), /32-256/);
  assert.equal(loadGatewayConfig({}).host, "127.0.0.1");
  assert.equal(loadGatewayConfig({}).approvalTtlMs, 600_000);
  assert.deepEqual(
    [...loadGatewayConfig({ SKILL_FETCH_ALLOW_PRIVATE: "127.0.0.1:8080, Skills.Local:80" }).fetch.allowPrivate],
    ["127.0.0.1:8080", "skills.local:80"],
  );
  assert.throws(() => loadGatewayConfig({ SKILL_FETCH_ALLOW_PRIVATE: "127.0.0.1" }), /must be host:port/);
  assert.throws(() => loadGatewayConfig({ PORT: "http" }), /PORT/);
  assert.deepEqual(loadGatewayConfig({ ALLOWED_ORIGINS: " https://App.example ," }).allowedOrigins, ["https://App.example"]);
  assert.throws(
    () => loadGatewayConfig({ ALLOWED_ORIGINS: "https://ok.example,https://bad.example/path" }),
    (e: Error) => /"https:\/\/bad\.example\/path" must be an origin/.test(e.message) && !/"https:\/\/ok/.test(e.message),
  );
  assert.throws(() => loadGatewayConfig({ AGENT_TOKENS: "bot:abc" }), /"bot:abc" must be name:sha256hex/);
  assert.throws(() => loadGatewayConfig({ TELEGRAM_CHAT_ID: "@chan" }), /numeric chat id/);
  assert.throws(() => loadGatewayConfig({ EXECUTOR_MODE: "docker" }), /only "direct"/);
  assert.throws(() => loadGatewayConfig({ SECRETS_DIR: "/run/secrets" }), /SECRETS_DIR/);
  assert.throws(() => loadGatewayConfig({ SECRETS_JSON: "{}" }), /refuses to start: its environment contains SECRETS_JSON/);
  assert.throws(() => loadGatewayConfig({ SKILL_FETCH_MAX_BYTES: String(10 * 1024 * 1024) }), /SKILL_FETCH_MAX_BYTES/);
});
