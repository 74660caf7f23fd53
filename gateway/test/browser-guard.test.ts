import { test } from "node:test";
import assert from "node:assert/strict";
import { hostnameOf } from "../src/http/browser-guard.ts";
import { dataUrl, gatewayFixture } from "../../test/helpers/gateway-fixture.ts";

const body = () => JSON.stringify({ skill_id: "page", skill_url: dataUrl("console.log('from a page')") });

test("hostnameOf: port dropped, case folded, IPv6 brackets kept", () => {
  assert.equal(hostnameOf("LocalHost:3737"), "localhost");
  assert.equal(hostnameOf("[::1]:3737"), "[::1]");
  assert.equal(hostnameOf("[::1]"), "[::1]");
  assert.equal(hostnameOf("oauth3-proxy"), "oauth3-proxy");
  assert.equal(hostnameOf("evil.example:80"), "evil.example");
});

test("what a web page can send is refused with a clear 403/415, stores nothing and reaches no approver", async () => {
  const { app, store, channel } = gatewayFixture();
  const cases: Array<[Record<string, string>, number, string]> = [
    // a "simple" cross-origin POST (no preflight): text/plain, a form
    [
      { "content-type": "text/plain;charset=UTF-8", origin: "https://evil.example", "sec-fetch-site": "cross-site" },
      403,
      "forbidden_origin",
    ],
    [{ "content-type": "text/plain" }, 415, "unsupported_media_type"],
    [{ "content-type": "application/x-www-form-urlencoded" }, 415, "unsupported_media_type"],
    [{}, 415, "unsupported_media_type"],
    // a DNS-rebinding page: same origin in the browser's eyes, but its own name in Host
    [{ "content-type": "application/json", host: "rebind.evil.example:3737" }, 403, "forbidden_host"],
    [{ "content-type": "application/json", origin: "null" }, 403, "forbidden_origin"],
    [{ "content-type": "application/json", origin: "http://localhost:3737" }, 403, "forbidden_origin"],
    [{ "content-type": "application/json", "sec-fetch-site": "same-site" }, 403, "forbidden_site"],
    [{ "content-type": "application/json", "sec-fetch-site": "cross-site" }, 403, "forbidden_site"],
  ];
  for (const [headers, status, code] of cases) {
    const res = await app.request("http://localhost/execute", { method: "POST", headers, body: body() });
    const json = (await res.json()) as { error: string; code: string };
    assert.equal(res.status, status, `${JSON.stringify(headers)} -> ${JSON.stringify(json)}`);
    assert.equal(json.code, code, JSON.stringify(headers));
    assert.ok(json.error.length > 10);
  }
  // Reads are guarded too: a rebinding page cannot read a status or the health document.
  for (const path of ["/health", "/execute/exec_0123456789abcdef/status", "/openapi.json"]) {
    const res = await app.request(`http://rebind.evil.example${path}`);
    assert.equal(res.status, 403, path);
  }
  assert.deepEqual(
    store.list(() => true),
    [],
    "nothing stored",
  );
  assert.equal(channel.announced.length, 0, "no card");

  // What agents send keeps working: Node's fetch (sec-fetch-mode: cors, no Origin), curl, the CLI.
  for (const [host, headers] of [
    ["localhost:3737", { "content-type": "application/json", "sec-fetch-mode": "cors" }],
    ["127.0.0.1:3737", { "content-type": "application/json; charset=utf-8" }],
    ["[::1]:3737", { "content-type": "Application/JSON" }],
    ["oauth3-proxy:3737", { "content-type": "application/json", "sec-fetch-site": "same-origin" }],
    ["GATEWAY", { "content-type": "application/json", "sec-fetch-site": "none" }],
  ] as const) {
    const res = await app.request(`http://${host}/execute`, { method: "POST", headers: { ...headers, host }, body: body() });
    assert.equal(res.status, 200, `${host}: ${await res.text()}`);
  }
});

test("ALLOWED_HOSTS and ALLOWED_ORIGINS add names and origins; the config refuses malformed ones", async () => {
  const { loadGatewayConfig } = await import("../src/config.ts");
  const c = loadGatewayConfig({ ALLOWED_HOSTS: "abc-3739.dstack.example, [fd00::1]", ALLOWED_ORIGINS: "https://ops.example" });
  assert.deepEqual(c.allowedHosts, ["abc-3739.dstack.example", "[fd00::1]"]);
  assert.deepEqual(c.allowedOrigins, ["https://ops.example"]);
  assert.throws(() => loadGatewayConfig({ ALLOWED_HOSTS: "host:3737" }), /ALLOWED_HOSTS/);
  assert.throws(() => loadGatewayConfig({ ALLOWED_ORIGINS: "ops.example" }), /ALLOWED_ORIGINS/);
});
