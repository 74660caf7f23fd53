import { test } from "node:test";
import assert from "node:assert/strict";
import { checkSecretName, isPublicAddress, LIMITS, normalizeHost, parseSkillHeader, PolicyError, resolveRunSpec } from "@oauth3/shared";

const code = (fn: () => unknown) => {
  try {
    fn();
  } catch (err) {
    assert.ok(err instanceof PolicyError, `expected PolicyError, got ${String(err)}`);
    return err.code;
  }
  assert.fail("expected a PolicyError");
};

test("secret names: upper-case identifiers only, runtime names refused", () => {
  assert.equal(checkSecretName("ANTHROPIC_API_KEY"), "ANTHROPIC_API_KEY");
  for (const bad of ["lower", "1ABC", "A-B", "", "A".repeat(65), "A B", 42]) {
    assert.equal(
      code(() => checkSecretName(bad)),
      "invalid_secret_name",
      String(bad),
    );
  }
  for (const reserved of [
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "NO_PROXY",
    "OTEL_DENO",
    "DENO_DIR",
    "LD_PRELOAD",
    "NODE_OPTIONS",
    "SSLKEYLOGFILE",
    "PATH",
    "HOME",
    "DENO_V8_FLAGS",
    "LC_ALL",
    "LOCALDOMAIN",
    "RES_OPTIONS",
    "HOSTALIASES",
    "LOCPATH",
    "NLSPATH",
    "GCONV_PATH",
    "TZDIR",
    "RESOLV_MULTI",
    "FTP_PROXY",
  ]) {
    assert.equal(
      code(() => checkSecretName(reserved)),
      "reserved_name",
      reserved,
    );
  }
});

test("hosts: public DNS names normalised to host:port; everything else refused", () => {
  assert.equal(normalizeHost("api.anthropic.com"), "api.anthropic.com:443");
  assert.equal(normalizeHost("API.Example.COM:8443"), "api.example.com:8443");
  assert.equal(normalizeHost("bücher.example"), "xn--bcher-kva.example:443");
  for (const bad of [
    "*",
    "*.example.com",
    "localhost",
    "localhost:80",
    "gateway",
    "127.0.0.1",
    "[::1]",
    "::1",
    "a.com,b.com",
    "unix:/x",
    "vsock:3",
    "user@example.com",
    "https://example.com",
    "example.com/path",
    "",
    " ",
    "example.com:0",
    "example.com:70000",
    "1.2.3.4:443",
    "foo.localhost",
    "exa mple.com",
    "-bad.example.com",
    "example.123",
  ]) {
    assert.equal(
      code(() => normalizeHost(bad)),
      "invalid_host",
      JSON.stringify(bad),
    );
  }
});

test("header: only the leading comment block counts", () => {
  const header = parseSkillHeader(`// @skill weather
// @description Looks up
// @description the weather
// @secrets WEATHER_KEY, OTHER_KEY
// @network api.weather.example
// @network backup.weather.example:8443
// @timeout 20
const x = 1;
// @secrets SNEAKY
`);
  assert.deepEqual(header, {
    name: "weather",
    description: "Looks up the weather",
    secrets: ["WEATHER_KEY", "OTHER_KEY"],
    network: ["api.weather.example", "backup.weather.example:8443"],
    timeoutSeconds: "20",
  });
  assert.deepEqual(parseSkillHeader("/**\n * @skill a\n * @secrets A\n */\nfoo()"), { name: "a", secrets: ["A"] });
  assert.deepEqual(parseSkillHeader("console.log(1)"), {});
});

test("run spec: request must equal the header where the header speaks", () => {
  const header = parseSkillHeader("// @secrets FOO\n// @network api.example.com\n// @timeout 5\nx");
  const ok = resolveRunSpec({ secrets: ["FOO"], args: [] }, header, 300);
  assert.deepEqual(ok, { secretNames: ["FOO"], network: ["api.example.com:443"], args: [], timeoutSeconds: 5 });
  assert.equal(
    code(() => resolveRunSpec({ secrets: ["FOO", "BAR"], args: [] }, header, 300)),
    "header_mismatch",
  );
  assert.equal(
    code(() => resolveRunSpec({ secrets: [], args: [] }, header, 300)),
    "header_mismatch",
  );
  assert.equal(
    code(() => resolveRunSpec({ secrets: ["FOO"], network: ["evil.example.com"], args: [] }, header, 300)),
    "header_mismatch",
  );
  assert.equal(
    code(() => resolveRunSpec({ secrets: ["FOO"], args: [], timeoutSeconds: 9 }, header, 300)),
    "header_mismatch",
  );
  assert.equal(
    code(() => resolveRunSpec({ secrets: ["FOO", "FOO"], args: [] }, {}, 300)),
    "duplicate_secret",
  );
  assert.equal(
    code(() => resolveRunSpec({ secrets: [], args: [], timeoutSeconds: 301 }, {}, 300)),
    "invalid_timeout",
  );
  assert.equal(resolveRunSpec({ secrets: [], args: [] }, {}, 10).timeoutSeconds, 10);
});

test("args: upstream lower-case names work; shadowing and runtime names refused", () => {
  const spec = resolveRunSpec(
    {
      secrets: ["FOO"],
      args: [
        { name: "prompt", value: "hi" },
        { name: "City", value: "Z" },
        { name: "max_N2", value: "1" },
      ],
    },
    {},
    300,
  );
  assert.deepEqual(spec.args.map((a) => a.name).sort(), ["City", "max_N2", "prompt"]);
  for (const [name, expected] of [
    ["foo", "arg_shadows_name"],
    ["Foo", "arg_shadows_name"],
    ["http_proxy", "reserved_name"],
    // glibc reads these (the resolver: a granted name's first lookup went to the attacker's zone),
    // and the rule refuses every all-capital name, known today or not.
    ["LOCALDOMAIN", "reserved_name"],
    ["RES_OPTIONS", "reserved_name"],
    ["HOSTALIASES", "reserved_name"],
    ["LOCPATH", "reserved_name"],
    ["NLSPATH", "reserved_name"],
    ["GCONV_PATH", "reserved_name"],
    ["TZDIR", "reserved_name"],
    ["RESOLV_MULTI", "reserved_name"],
    ["SOME_FUTURE_LIBC_VAR", "reserved_name"],
    ["FOO", "reserved_name"],
    ["X", "reserved_name"],
    ["socks_proxy", "reserved_name"],
    ["Ftp_Proxy", "reserved_name"],
    ["HTTPS_PROXY", "reserved_name"],
    ["deno_dir", "reserved_name"],
    ["ld_preload", "reserved_name"],
    ["otel_exporter_otlp_endpoint", "reserved_name"],
    ["bad-name", "invalid_arg_name"],
    ["", "invalid_arg_name"],
  ] as const) {
    assert.equal(
      code(() => resolveRunSpec({ secrets: ["FOO"], args: [{ name, value: "x" }] }, {}, 300)),
      expected,
      name,
    );
  }
  assert.equal(
    code(() => resolveRunSpec({ secrets: [], args: [{ name: "a", value: "x\0y" }] }, {}, 300)),
    "invalid_arg_value",
  );
  assert.equal(
    code(() => resolveRunSpec({ secrets: [], args: [{ name: "a", value: "x".repeat(9000) }] }, {}, 300)),
    "arg_too_large",
  );
  assert.equal(
    code(() =>
      resolveRunSpec(
        {
          secrets: [],
          args: [
            { name: "ab", value: "1" },
            { name: "aB", value: "2" },
          ],
        },
        {},
        300,
      ),
    ),
    "arg_shadows_name",
  );
});

test("addresses: only global unicast is public, including mapped forms", () => {
  for (const a of ["8.8.8.8", "2001:4860:4860::8888", "::ffff:8.8.8.8"]) assert.ok(isPublicAddress(a), a);
  for (const a of [
    "127.0.0.1",
    "10.1.2.3",
    "172.16.0.1",
    "192.168.1.1",
    "169.254.169.254",
    "100.64.0.1",
    "0.0.0.0",
    "224.0.0.1",
    "255.255.255.255",
    "::1",
    "::",
    "fe80::1",
    "fd00::1",
    "::ffff:127.0.0.1",
    "::ffff:169.254.169.254",
    "64:ff9b::7f00:1",
    "2002:7f00:1::1",
    "not-an-ip",
    // IPv4-compatible (::/96): loopback, metadata, private and even public v4 inside it
    "::7f00:1",
    "::127.0.0.1",
    "::a9fe:a9fe",
    "::a00:1",
    "::808:808",
    "::8.8.8.8",
    "0:0:0:0:0:0:7f00:1",
  ]) {
    assert.ok(!isPublicAddress(a), a);
  }
});

test("card-sized limits: at most 8 secrets, 8 hosts of at most 100 characters (both processes refuse beyond)", () => {
  const label = "a".repeat(40);
  assert.equal(normalizeHost(`${label}.${label.slice(0, 10)}.example.com`).length <= LIMITS.maxHostLength, true);
  assert.throws(
    () => normalizeHost(`${label}.${label}.${label}.example.com`),
    (e: PolicyError) => e.code === "invalid_host" && /longer than 100/.test(e.message),
  );
  const many = (n: number, f: (i: number) => string) => Array.from({ length: n }, (_, i) => f(i));
  assert.throws(
    () => resolveRunSpec({ secrets: many(9, (i) => `S${i}`), args: [] }, {}, 30),
    (e: PolicyError) => e.code === "too_many_secrets",
  );
  assert.throws(
    () => resolveRunSpec({ secrets: [], network: many(9, (i) => `h${i}.example.com`), args: [] }, {}, 30),
    (e: PolicyError) => e.code === "too_many_hosts",
  );
  assert.equal(
    resolveRunSpec({ secrets: many(8, (i) => `S${i}`), network: many(8, (i) => `h${i}.example.com`), args: [] }, {}, 30).network.length,
    8,
  );
});
