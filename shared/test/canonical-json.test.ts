import { test } from "node:test";
import assert from "node:assert/strict";
import { AUDIT_FORMAT, auditHash, canonicalJson, GENESIS, legacyCanonicalJson, verifyAuditChain, type AuditEvent } from "../src/index.ts";

test("canonical JSON is RFC 8785: keys by UTF-16 code units, ECMAScript numbers, JSON string escapes", () => {
  // The JCS example of the canonicalize package's README, and RFC 8785's own sorting example (3.2.3).
  assert.equal(
    canonicalJson({ "1": { f: { f: "hi", F: 5 }, "\n": 56.0 }, "10": {}, "": "empty", a: {}, "111": [{ e: "yes", E: "no" }], A: {} }),
    '{"":"empty","1":{"\\n":56,"f":{"F":5,"f":"hi"}},"10":{},"111":[{"E":"no","e":"yes"}],"A":{},"a":{}}',
  );
  assert.equal(
    canonicalJson({
      "\u20ac": "Euro Sign",
      "\r": "Carriage Return",
      "\ufb33": "Hebrew Letter Dalet With Dagesh",
      "1": "One",
      "\ud83d\ude00": "Emoji: Grinning Face",
      "\u0080": "Control",
      "\u00f6": "Latin Small Letter O With Diaeresis",
    }),
    '{"\\r":"Carriage Return","1":"One","\u0080":"Control","\u00f6":"Latin Small Letter O With Diaeresis","\u20ac":"Euro Sign","\ud83d\ude00":"Emoji: Grinning Face","\ufb33":"Hebrew Letter Dalet With Dagesh"}',
  );
  assert.equal(
    canonicalJson({ n: [1e21, 1e-7, -0, 0.1 + 0.2, Number("333333333.33333329")] }),
    '{"n":[1e+21,1e-7,0,0.30000000000000004,333333333.3333333]}',
  );
  assert.equal(canonicalJson({ a: undefined, b: 1 }), '{"b":1}', "an absent optional member is left out, as JSON does");
});

test("canonical JSON refuses what JSON would silently change, naming where", () => {
  assert.throws(() => canonicalJson([1, undefined]), /undefined in an array at \$\[1\]/);
  assert.throws(() => canonicalJson({ at: new Date(0) }), /a Date object at \$\.at/);
  assert.throws(() => canonicalJson({ m: new Map() }), /a Map object at \$\.m/);
  assert.throws(() => canonicalJson({ x: Number.NaN }), /non-finite number at \$\.x/);
  assert.throws(() => canonicalJson({ x: 1n }), /a bigint at \$\.x/);
  assert.throws(() => canonicalJson({ s: "\ud800" }), /Lone surrogate/);
  // What format 1 did with the same input: signed something else without a word.
  assert.equal(legacyCanonicalJson([1, undefined]), "[1,]", "not even JSON");
  assert.equal(legacyCanonicalJson({ at: new Date(0) }), '{"at":{}}', "a Date signed as {}");
});

function chain(entries: Array<Partial<AuditEvent>>): AuditEvent[] {
  let prev = GENESIS;
  return entries.map((e, i) => {
    const base = { ...e, seq: i + 1, at: 1_700_000_000_000 + i, type: e.type ?? "status", data: e.data ?? { n: i }, prev };
    const event = { ...base, hash: auditHash(base) };
    prev = event.hash;
    return event;
  });
}

test("the chain: new entries carry format 2 (RFC 8785); entries without a format still verify as format 1", () => {
  const mixed = chain([
    { type: "request_received" },
    { type: "decision" },
    { v: AUDIT_FORMAT, type: "run_started" },
    { v: AUDIT_FORMAT, type: "status" },
  ]);
  assert.equal(mixed[0]!.v, undefined);
  assert.deepEqual(verifyAuditChain(mixed).problems, []);
  // A format-1 hash is what the code before format 2 computed (the same canonical text for plain data).
  const old = mixed[0]!;
  assert.equal(old.hash, auditHash({ seq: old.seq, at: old.at, type: old.type, data: old.data, prev: old.prev }));

  // Dropping the version of a format-2 entry (a downgrade) or changing it breaks its hash.
  const downgraded = mixed.map((e) => ({ ...e }));
  delete downgraded[2]!.v;
  assert.match(verifyAuditChain(downgraded).problems.join("\n"), /entry 3: content does not match its hash/);
  const unknown = mixed.map((e, i) => (i === 3 ? { ...e, v: 3 } : e));
  assert.match(verifyAuditChain(unknown).problems.join("\n"), /entry 4: unknown audit entry format 3/);
});

test("an entry written before format 2 keeps its hash (computed by the previous release's code)", () => {
  const written = {
    seq: 1,
    at: 1764700000000,
    type: "request_received",
    requestId: "exec_0123456789abcdef",
    data: { skillId: "s", secretNames: ["FOO"], network: ["api.example.com:443"], agent: undefined, codeSize: 12 },
    prev: GENESIS,
  };
  const hash = "0150744b18d63c0fafd7c36d3709523fed5526461fc4fd946163f5a6fb158a35";
  assert.equal(auditHash(written), hash);
  assert.deepEqual(verifyAuditChain([{ ...written, hash }]).problems, []);
});
