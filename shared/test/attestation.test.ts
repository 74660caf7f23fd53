import { test } from "node:test";
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { policyDigest, replayRtmr3, reportDataFor, tdxReportData, verifyReceipt, type AttestationStatement } from "@oauth3/shared";
import { SigningKey } from "@oauth3/shared/signing-key";

const statement: AttestationStatement = {
  v: 1,
  nonce: "ab".repeat(16),
  auditHead: { seq: 3, hash: "cd".repeat(32) },
  gatewayPublicKey: "01".repeat(32),
  runnerPublicKey: "02".repeat(32),
  runnerKeySource: "dstack",
  policySha256: "ef".repeat(32),
};

test("report_data is SHA-512 over the domain and the canonical statement, whatever the key order", () => {
  const shuffled = Object.fromEntries(Object.entries(statement).reverse()) as unknown as AttestationStatement;
  assert.equal(reportDataFor(shuffled), reportDataFor(statement));
  const canonical =
    '{"auditHead":{"hash":"' +
    "cd".repeat(32) +
    '","seq":3},"gatewayPublicKey":"' +
    "01".repeat(32) +
    '","nonce":"' +
    "ab".repeat(16) +
    '","policySha256":"' +
    "ef".repeat(32) +
    '","runnerKeySource":"dstack","runnerPublicKey":"' +
    "02".repeat(32) +
    '","v":1}';
  assert.equal(reportDataFor(statement), createHash("sha512").update(`oauth3-proxy/attestation/v1\n${canonical}`).digest("hex"));
  for (const [k, v] of [
    ["nonce", "ac".repeat(16)],
    ["runnerKeySource", "local"],
    ["policySha256", "ee".repeat(32)],
  ] as const) {
    assert.notEqual(reportDataFor({ ...statement, [k]: v }), reportDataFor(statement), k);
  }
  assert.notEqual(reportDataFor({ ...statement, auditHead: { seq: 4, hash: statement.auditHead.hash } }), reportDataFor(statement));
  assert.equal(policyDigest({ b: 1, a: [2, { d: 3, c: 4 }] }), policyDigest({ a: [2, { c: 4, d: 3 }], b: 1 }));
});

test("report_data is read from TDX v4 and v5 quotes; anything else is refused with a reason", () => {
  const rd = Buffer.alloc(64, 7);
  const quote = (version: number, tee: number, length: number, at: number) => {
    const q = Buffer.alloc(length);
    q.writeUInt16LE(version, 0);
    q.writeUInt32LE(tee, 4);
    if (at + 64 <= length) rd.copy(q, at);
    return q.toString("hex");
  };
  const rtmr3 = (v: number) => ({ reportData: rd.toString("hex"), rtmr3: "00".repeat(48), version: v });
  assert.deepEqual(tdxReportData(quote(4, 0x81, 1100, 568)), rtmr3(4));
  assert.deepEqual(tdxReportData(quote(5, 0x81, 1100, 574)), rtmr3(5));
  assert.match((tdxReportData(quote(3, 0x00, 1100, 436)) as { error: string }).error, /not a TDX quote/);
  assert.match((tdxReportData(quote(6, 0x81, 1100, 568)) as { error: string }).error, /unsupported quote version 6/);
  assert.match((tdxReportData(quote(4, 0x81, 600, 568)) as { error: string }).error, /shorter than its TD report/);
  assert.match((tdxReportData("zz") as { error: string }).error, /not hex/);
  assert.match((tdxReportData("00") as { error: string }).error, /shorter than its header/);
});

test("a key from a seed is deterministic and signs canonical JSON that verifyReceipt accepts", () => {
  const a = SigningKey.fromSeed(Buffer.alloc(32, 1));
  const b = SigningKey.fromSeed(Buffer.alloc(32, 1));
  assert.equal(a.publicKeyHex, b.publicKeyHex);
  assert.equal(a.source, "dstack");
  assert.notEqual(SigningKey.fromSeed(Buffer.alloc(32, 2)).publicKeyHex, a.publicKeyHex);
  const { payloadJson, signature } = a.sign({ z: 1, a: 2 });
  assert.equal(payloadJson, '{"a":2,"z":1}');
  assert.ok(verifyReceipt(payloadJson, signature.toString("base64"), a.publicKeyHex));
  assert.ok(!verifyReceipt('{"a":3,"z":1}', signature.toString("base64"), a.publicKeyHex));
  assert.throws(() => SigningKey.fromSeed(Buffer.alloc(31)), /32 bytes/);
});

test("RTMR3 replay: dstack's v1 and v2 event digests, each event's digest checked against its content", () => {
  // Digests computed here straight from dstack's definitions (cc-eventlog runtime_events.rs).
  const type = Buffer.from([0x01, 0x00, 0x00, 0x08]);
  const v1 = (name: string, payload: string) =>
    createHash("sha384")
      .update(Buffer.concat([type, Buffer.from(`:${name}:`), Buffer.from(payload, "hex")]))
      .digest();
  const v2 = (name: string, payload: string) =>
    createHash("sha384").update(`{"event":"${name}","event_type":134217729,"payload":"${payload}","version":2}`).digest();
  const events = [
    { imr: 3, event_type: 0x08000001, event: "app-id", event_payload: "deadbeef", digest: v1("app-id", "deadbeef").toString("hex") },
    { imr: 1, event_type: 5, event: "", event_payload: "", digest: "22".repeat(48) },
    {
      imr: 3,
      event_type: 0x08000001,
      event: "compose-hash",
      event_payload: "abcd",
      digest: v2("compose-hash", "abcd").toString("hex"),
      version: 2,
    },
  ];
  let mr = Buffer.alloc(48);
  for (const d of [v1("app-id", "deadbeef"), v2("compose-hash", "abcd")])
    mr = createHash("sha384")
      .update(Buffer.concat([mr, d]))
      .digest();
  const ok = replayRtmr3(JSON.stringify(events), mr.toString("hex"));
  assert.deepEqual(ok.problems, []);
  assert.deepEqual(
    [...ok.payloads],
    [
      ["app-id", "deadbeef"],
      ["compose-hash", "abcd"],
    ],
  );
  const forged = structuredClone(events);
  forged[2]!.event_payload = "abce";
  assert.deepEqual(replayRtmr3(JSON.stringify(forged), mr.toString("hex")).problems, ['event "compose-hash": digest is not its content']);
  assert.deepEqual(replayRtmr3(JSON.stringify([events[2], events[0]]), mr.toString("hex")).problems, [
    "RTMR3 replayed from the event log differs from the quote's RTMR3",
  ]);
  assert.match(replayRtmr3("{", mr.toString("hex")).problems[0]!, /not a JSON array/);
});
