import assert from "node:assert/strict";
import { gzipSync } from "node:zlib";
import { test } from "node:test";
import { parseBinding } from "../src/bindings.ts";
import { DENY_NET_CIDRS, denyNetExcept } from "../src/deno-invocation.ts";
import { BodyGate, type HeldSecret, judgeRequest, newPlaceholder, placeholdersIn } from "../src/placeholders.ts";
import { StreamScrubber } from "../src/redact.ts";

const VALUE = "sk-ant-real-value-9f3e1d";
function held(name: string, value: string, binding: string): HeldSecret {
  const b = parseBinding(name, binding, "t");
  assert.equal(b.mode, "placeholder");
  return { name, value, placeholder: newPlaceholder(), binding: b as Extract<typeof b, { mode: "placeholder" }> };
}

test("placeholders: fresh each time, the same length whatever the value, URL- and header-safe", () => {
  const seen = new Set(Array.from({ length: 1000 }, newPlaceholder));
  assert.equal(seen.size, 1000);
  for (const p of seen) assert.match(p, /^oauth3ph_[A-Za-z0-9_-]{43}$/);
});

test("the value goes in only toward a bound host, only in the bound header, in the bound form", () => {
  const k = held("ANTHROPIC_API_KEY", VALUE, "api.anthropic.com:443 header:x-api-key");
  const ok = judgeRequest(
    {
      hostPort: "api.anthropic.com:443",
      target: "/v1/messages",
      headers: [
        ["X-Api-Key", k.placeholder],
        ["accept", "*/*"],
      ],
      body: Buffer.from("{}"),
    },
    [k],
  );
  assert.ok(ok.ok);
  assert.deepEqual(ok.headers, [
    ["X-Api-Key", VALUE],
    ["accept", "*/*"],
  ]);
  assert.deepEqual(ok.substituted, ["ANTHROPIC_API_KEY"]);

  const refused = (hostPort: string, target: string, headers: Array<[string, string]>, body = "") => {
    const r = judgeRequest({ hostPort, target, headers, body: Buffer.from(body) }, [k]);
    assert.ok(!r.ok, `${hostPort} ${target} ${JSON.stringify(headers)} ${body}`);
    assert.ok(!JSON.stringify(r).includes(VALUE));
    return r.violations;
  };
  assert.deepEqual(refused("evil.example.com:443", "/", [["x-api-key", k.placeholder]]), [
    { secret: "ANTHROPIC_API_KEY", host: "evil.example.com:443", where: "header x-api-key" },
  ]);
  assert.deepEqual(refused("api.anthropic.com:8443", "/", [["x-api-key", k.placeholder]])[0]!.where, "header x-api-key");
  assert.equal(refused("api.anthropic.com:443", "/", [["x-other", k.placeholder]])[0]!.where, "header x-other");
  assert.equal(refused("api.anthropic.com:443", "/", [["x-api-key", `pre${k.placeholder}`]])[0]!.where, "header x-api-key");
  assert.equal(refused("api.anthropic.com:443", `/v1/${k.placeholder}`, [])[0]!.where, "path");
  assert.equal(refused("api.anthropic.com:443", `/v1?key=${k.placeholder}`, [])[0]!.where, "query key");
  assert.equal(refused("api.anthropic.com:443", "/v1", [], `{"k":"${k.placeholder}"}`)[0]!.where, "body");
  // Everything misplaced in one request is named; nothing of it is substituted.
  assert.equal(refused("api.anthropic.com:443", `/${k.placeholder}`, [["x-api-key", k.placeholder]], k.placeholder).length, 2);
});

test("schemes, query parameters and bodies where the binding names them", () => {
  const g = held("GITHUB_TOKEN", "ghp_realtoken123", "api.github.com:443 header:authorization:Bearer,query:access_token,body");
  const r = judgeRequest(
    {
      hostPort: "api.github.com:443",
      target: `/user?x=1&access_token=${g.placeholder}`,
      headers: [["Authorization", `bearer ${g.placeholder}`]],
      body: Buffer.from(`token=${g.placeholder}&again=${g.placeholder}`),
    },
    [g],
  );
  assert.ok(r.ok);
  assert.equal(r.target, "/user?x=1&access_token=ghp_realtoken123");
  assert.deepEqual(r.headers, [["Authorization", "bearer ghp_realtoken123"]]);
  assert.equal(r.body.toString(), "token=ghp_realtoken123&again=ghp_realtoken123");
  // Without the scheme, or with another one, the header is refused.
  for (const v of [g.placeholder, `token ${g.placeholder}`, `Bearer  ${g.placeholder}`]) {
    assert.ok(
      !judgeRequest({ hostPort: "api.github.com:443", target: "/", headers: [["authorization", v]], body: Buffer.alloc(0) }, [g]).ok,
      v,
    );
  }
  // A query parameter of another name is refused.
  assert.ok(
    !judgeRequest({ hostPort: "api.github.com:443", target: `/?token=${g.placeholder}`, headers: [], body: Buffer.alloc(0) }, [g]).ok,
  );
  // Two secrets: each only where its own binding says.
  const k = held("ANTHROPIC_API_KEY", VALUE, "api.anthropic.com:443 header:x-api-key");
  const cross = judgeRequest(
    { hostPort: "api.github.com:443", target: "/", headers: [["authorization", `Bearer ${k.placeholder}`]], body: Buffer.alloc(0) },
    [g, k],
  );
  assert.ok(!cross.ok);
  assert.deepEqual(cross.violations, [{ secret: "ANTHROPIC_API_KEY", host: "api.github.com:443", where: "header authorization" }]);
  assert.deepEqual(
    placeholdersIn({ target: `/?q=${k.placeholder}`, headers: [], body: Buffer.alloc(0) }, [g, k]).map((s) => s.name),
    ["ANTHROPIC_API_KEY"],
  );
});

test("a streamed body: placeholders replaced or refused across every chunk boundary, other bytes unchanged", () => {
  const g = held("GITHUB_TOKEN", "ghp_réal€token", "api.github.com:443 header:authorization:Bearer,body");
  const k = held("ANTHROPIC_API_KEY", VALUE, "api.anthropic.com:443 header:x-api-key");
  const binary = Buffer.from([0xff, 0x00, 0xfe, 0x80]);
  const body = Buffer.concat([Buffer.from(`${g.placeholder}x`), binary, Buffer.from(`${g.placeholder.slice(0, 20)}|${g.placeholder}`)]);
  const want = Buffer.concat([Buffer.from("ghp_réal€tokenx"), binary, Buffer.from(`${g.placeholder.slice(0, 20)}|ghp_réal€token`)]);
  const through = (gate: BodyGate, bytes: Buffer, size: number) => {
    const parts: Buffer[] = [];
    for (let i = 0; i < bytes.length; i += size) parts.push(gate.push(bytes.subarray(i, i + size)));
    parts.push(gate.end());
    return Buffer.concat(parts);
  };
  for (let size = 1; size <= body.length; size++) {
    const gate = new BodyGate([g, k], "api.github.com:443");
    assert.ok(gate.substitutes);
    assert.deepEqual(through(gate, body, size), want, `chunk ${size}`);
    assert.deepEqual(gate.violations, []);
    assert.deepEqual([...gate.substituted], ["GITHUB_TOKEN"]);
  }
  // Another secret's placeholder (not bound to this body) stops the stream before the chunk that holds it.
  const bad = Buffer.concat([Buffer.from("a".repeat(100)), Buffer.from(k.placeholder), Buffer.from("b".repeat(100))]);
  for (let size = 1; size <= bad.length; size += 3) {
    const gate = new BodyGate([g, k], "api.github.com:443");
    const out = through(gate, bad, size);
    assert.ok(!out.toString("latin1").includes(k.placeholder.slice(0, 10)), `chunk ${size}: no part of the placeholder went out`);
    assert.ok(out.length <= 100);
    assert.deepEqual(gate.violations, [{ secret: "ANTHROPIC_API_KEY", host: "api.github.com:443", where: "body" }]);
  }
  // Toward another host, or over plain http, nothing is put in and the placeholder is refused.
  const elsewhere = new BodyGate([g], "evil.example.com:443");
  assert.ok(!elsewhere.substitutes);
  assert.equal(through(elsewhere, body, 7).length, 0, "the body starts with the placeholder: nothing went out");
  assert.equal(elsewhere.violations[0]!.where, "body");
  const plain = new BodyGate([g], "api.github.com:443", "plain http");
  through(plain, body, 64);
  assert.deepEqual(plain.violations, [{ secret: "GITHUB_TOKEN", host: "api.github.com:443", where: "plain http" }]);
});

test("the scrubber replaces every known form of a value, also split across any chunk boundary", () => {
  const ph = newPlaceholder();
  const forms = [
    VALUE,
    Buffer.from(VALUE).toString("base64"),
    Buffer.from(VALUE).toString("hex"),
    encodeURIComponent(`${VALUE}/+`).slice(0, -6),
    JSON.stringify(`a"${VALUE}`).slice(4, -1),
  ];
  const body = Buffer.from(`{"echo":"${forms.join('","')}","tail":"${VALUE.slice(0, 10)}"}`);
  for (let size = 1; size <= body.length; size += size < 8 ? 1 : 7) {
    const s = new StreamScrubber([{ value: VALUE, replacement: ph }]);
    const parts: Buffer[] = [];
    for (let i = 0; i < body.length; i += size) parts.push(s.push(body.subarray(i, i + size)));
    parts.push(s.end());
    const out = Buffer.concat(parts).toString();
    assert.ok(!out.includes(VALUE) && !out.includes(forms[1]!) && !out.includes(forms[2]!), `chunk ${size}: ${out}`);
    assert.equal(out.split(ph).length - 1, forms.length, `chunk ${size}`);
    assert.ok(out.endsWith(`"tail":"${VALUE.slice(0, 10)}"}`), "text that is not a whole form stays");
    assert.ok(s.scrubbed);
  }
  // Non-UTF-8 bytes pass through untouched.
  const bin = Buffer.concat([gzipSync("x"), Buffer.from([0xff, 0xfe, 0x00])]);
  const s = new StreamScrubber([{ value: VALUE, replacement: ph }]);
  assert.deepEqual(Buffer.concat([s.push(bin), s.end()]), bin);
  assert.equal(new StreamScrubber([{ value: VALUE, replacement: ph }]).text(`Bearer ${VALUE}`), `Bearer ${ph}`);
});

test("deno-only: --deny-net leaves out exactly the proxy's loopback address", () => {
  const toInt = (ip: string) => ip.split(".").reduce((n, p) => n * 256 + Number(p), 0);
  const covered = (cidrs: string[], ip: string) =>
    cidrs.some((c) => {
      const [net, bits] = c.split("/");
      const size = 2 ** (32 - Number(bits));
      return toInt(ip) >= toInt(net!) && toInt(ip) < toInt(net!) + size;
    });
  for (const proxy of ["127.0.0.1", "127.83.201.7", "127.255.255.254"]) {
    const list = denyNetExcept(proxy);
    assert.ok(!list.includes("127.0.0.0/8"));
    assert.ok(!covered(list, proxy), proxy);
    for (const other of ["127.0.0.0", "127.0.0.1", "127.0.0.2", "127.83.201.6", "127.83.201.8", "127.255.255.255", "127.1.2.3"]) {
      if (other !== proxy) assert.ok(covered(list, other), `${other} with the proxy at ${proxy}`);
    }
    for (const c of DENY_NET_CIDRS.filter((c) => c !== "127.0.0.0/8")) assert.ok(list.includes(c));
  }
  assert.throws(() => denyNetExcept("10.0.0.1"), /not an IPv4 loopback/);
});
