import { test } from "node:test";
import assert from "node:assert/strict";
import { serveLocal } from "../../test/helpers/local-server.ts";
import { dataUrl, gatewayFixture } from "../../test/helpers/gateway-fixture.ts";

test("upstream-compatible submit and status", async () => {
  const { post, app, channel } = gatewayFixture();
  const code = "// @skill hello\n// @secrets FOO\nconsole.log(Deno.env.get('FOO'))";
  const res = await post({ skill_id: "hello", skill_url: dataUrl(code), secrets: ["FOO"], args: { prompt: "hi", n: 3 } });
  assert.equal(res.status, 200);
  const body = (await res.json()) as Record<string, unknown>;
  assert.match(String(body.request_id), /^exec_[0-9a-f]{16}$/);
  assert.equal(body.status, "pending");
  assert.equal(body.message, "Awaiting approval");
  assert.match(String(body.code_hash), /^[0-9a-f]{64}$/);
  assert.equal(channel.announced.length, 1);
  assert.deepEqual(channel.announced[0]!.args, [
    { name: "n", value: "3" },
    { name: "prompt", value: "hi" },
  ]);

  const status = (await (await app.request(`/execute/${body.request_id}/status`)).json()) as Record<string, unknown>;
  assert.equal(status.status, "pending");
  assert.deepEqual(status.secrets, ["FOO"]);
  assert.equal(status.code_size, Buffer.byteLength(code));
  assert.equal(typeof status.created_at, "number");
  assert.equal(typeof status.expires_at, "number");

  for (const path of ["/execute/exec_0000000000000000/status", "/execute/../status", "/execute/x/status"]) {
    const r = await app.request(path);
    assert.equal(r.status, 404);
    assert.equal(((await r.json()) as { code: string }).code.length > 0, true);
  }
  const health = (await (await app.request("/health")).json()) as Record<string, unknown>;
  assert.equal(health.status, "ok");
  assert.equal(health.telegram_configured, false);
  assert.equal(health.isolation, "recording");
});

test("bad input gets a clear 4xx JSON error and leaves no request behind", async () => {
  const { post, store, channel } = gatewayFixture();
  const ok = dataUrl("console.log(1)");
  const cases: Array<[unknown, number, string]> = [
    ["{not json", 400, "invalid_json"],
    [{ skill_url: ok }, 400, "missing_field"],
    [{ skill_id: "x" }, 400, "missing_field"],
    [{ skill_id: "x\u202e", skill_url: ok }, 400, "invalid_body"],
    [{ skill_id: "x", skill_url: ok, secrets: "FOO" }, 400, "invalid_body"],
    [{ skill_id: "x", skill_url: ok, args: { a: { nested: 1 } } }, 400, "invalid_body"],
    [{ skill_id: "x", skill_url: ok, secrets: ["NOPE"] }, 400, "unknown_secret"],
    [{ skill_id: "x", skill_url: ok, secrets: ["HTTP_PROXY"] }, 400, "reserved_name"],
    [{ skill_id: "x", skill_url: ok, secrets: ["lower"] }, 400, "invalid_secret_name"],
    [{ skill_id: "x", skill_url: ok, args: { HTTPS_PROXY: "http://evil" } }, 400, "reserved_name"],
    [{ skill_id: "x", skill_url: ok, secrets: ["FOO"], args: { foo: "shadow" } }, 400, "arg_shadows_name"],
    // glibc's resolver reads these: the granted name's lookup would go to the agent's zone
    [{ skill_id: "x", skill_url: ok, args: { LOCALDOMAIN: "attacker.example" } }, 400, "reserved_name"],
    [{ skill_id: "x", skill_url: ok, args: { RES_OPTIONS: "ndots:15" } }, 400, "reserved_name"],
    [{ skill_id: "x", skill_url: ok, args: { HOSTALIASES: "/tmp/h" } }, 400, "reserved_name"],
    [{ skill_id: "x", skill_url: ok, network: ["169.254.169.254"] }, 400, "invalid_host"],
    [{ skill_id: "x", skill_url: dataUrl("// @secrets FOO\nx"), secrets: ["BAR"] }, 400, "header_mismatch"],
    [{ skill_id: "x", skill_url: dataUrl("// @timeout 9999\nx") }, 400, "invalid_timeout"],
    [{ skill_id: "x", skill_url: "http://example.com/skill.ts" }, 400, "invalid_skill_url"],
    [{ skill_id: "x", skill_url: "file:///etc/passwd" }, 400, "invalid_skill_url"],
    [{ skill_id: "x", skill_url: "ftp://example.com/x" }, 400, "invalid_skill_url"],
    [{ skill_id: "x", skill_url: "not a url" }, 400, "invalid_skill_url"],
    [{ skill_id: "x", skill_url: "https://user:pw@example.com/x" }, 400, "invalid_skill_url"],
    [{ skill_id: "x", skill_url: "https://127.0.0.1/x" }, 400, "skill_fetch_forbidden"],
    [{ skill_id: "x", skill_url: "https://[::1]/x" }, 400, "skill_fetch_forbidden"],
    [{ skill_id: "x", skill_url: "https://169.254.169.254/latest/meta-data" }, 400, "skill_fetch_forbidden"],
    [{ skill_id: "x", skill_url: "https://localhost/x" }, 400, "skill_fetch_forbidden"],
    [{ skill_id: "x", skill_url: "data:text/plain," }, 400, "invalid_skill_code"],
    [{ skill_id: "x", skill_url: "data:application/octet-stream;base64,//79" }, 400, "invalid_skill_code"],
    [{ skill_id: "x", skill_url: `data:text/plain;base64,${Buffer.alloc(300 * 1024, 65).toString("base64")}` }, 413, "skill_too_large"],
    // Nothing silently dropped: __proto__ (which an object literal would turn into a prototype), an
    // unknown or misspelt field, a lone surrogate anywhere, a data: URL in another charset.
    [`{"skill_id":"x","skill_url":"data:,1","args":{"__proto__":"x"}}`, 400, "invalid_arg_name"],
    [`{"skill_id":"x","skill_url":"data:,1","args":{"constructor":"x","__proto__":{"polluted":true}}}`, 400, "invalid_arg_name"],
    [{ skill_id: "x", skill_url: ok, netwrok: ["api.example.com"] }, 400, "invalid_body"],
    [`{"skill_id":"x\\ud800","skill_url":"data:,1"}`, 400, "invalid_body"],
    [`{"skill_id":"x","skill_url":"data:,1","args":{"a":"\\udfff"}}`, 400, "invalid_body"],
    [`{"skill_id":"x","skill_url":"data:,1","args":{"k\\ud800":"v"}}`, 400, "invalid_body"],
    [
      {
        skill_id: "x",
        skill_url: `data:text/typescript;charset=utf-16le;base64,${Buffer.from("console.log(1)", "utf16le").toString("base64")}`,
      },
      400,
      "invalid_skill_url",
    ],
    [{ skill_id: "x", skill_url: "data:text/typescript;charset=iso-8859-1,console.log(1)" }, 400, "invalid_skill_url"],
  ];
  for (const [body, status, code] of cases) {
    const res = await post(body);
    const json = (await res.json()) as { error: string; code: string };
    assert.equal(res.status, status, `${JSON.stringify(body).slice(0, 80)} -> ${JSON.stringify(json)}`);
    assert.equal(json.code, code, JSON.stringify(body).slice(0, 80));
    assert.ok(json.error.length > 0);
  }
  // What stays accepted: a valid pair (an emoji), an explicit UTF-8 charset.
  for (const body of [
    `{"skill_id":"x\\ud83d\\ude00","skill_url":"data:,console.log(1)"}`,
    { skill_id: "y", skill_url: "data:text/typescript;charset=UTF-8,console.log(2)" },
  ]) {
    const res = await post(body);
    assert.equal(res.status, 200, await res.text());
  }
  assert.equal(store.list(() => true).length, 2);
  const huge = await post({ skill_id: "x", skill_url: `data:,${"a".repeat(1024 * 1024)}` });
  assert.equal(huge.status, 413);
  assert.equal(store.list(() => true).length, 2, "no refused request is stored");
  assert.equal(channel.announced.length, 2, "no refused request reaches an approver");
});

test("the gateway fetches a skill once and keeps exactly those bytes", async () => {
  let fetches = 0;
  const { port } = await serveLocal((_req, res) => {
    fetches++;
    res.end(fetches === 1 ? "console.log('approved bytes')" : "console.log('swapped bytes')");
  });
  const { post, store } = gatewayFixture({ allowPrivate: [`127.0.0.1:${port}`] });
  const res = await post({ skill_id: "x", skill_url: `http://127.0.0.1:${port}/skill.ts` });
  assert.equal(res.status, 200);
  const { request_id } = (await res.json()) as { request_id: string };
  assert.equal(store.getCode(request_id)!.toString(), "console.log('approved bytes')");
  assert.equal(fetches, 1);
  // Without the operator's allowance the same private source is refused.
  const denied = await gatewayFixture().post({ skill_id: "x", skill_url: `http://127.0.0.1:${port}/skill.ts` });
  assert.equal(denied.status, 400);
});

test("redirects are re-checked: a hop to a private address is refused", async () => {
  const target = await serveLocal((_req, res) => res.end("console.log('internal')"));
  const redirector = await serveLocal((_req, res) => {
    res.writeHead(302, { location: `https://localhost:${target.port}/x` }).end();
  });
  const { post, store } = gatewayFixture({ allowPrivate: [`127.0.0.1:${redirector.port}`] });
  const res = await post({ skill_id: "x", skill_url: `http://127.0.0.1:${redirector.port}/skill.ts` });
  assert.equal(res.status, 400);
  assert.equal(((await res.json()) as { code: string }).code, "skill_fetch_forbidden");
  assert.deepEqual(
    store.list(() => true),
    [],
  );
});
