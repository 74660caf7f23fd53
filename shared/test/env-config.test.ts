import assert from "node:assert/strict";
import { test } from "node:test";
import { z } from "zod";
import { commaList, parseEnv } from "../src/env-config.js";

const schema = z.object({ HOSTS: commaList(/^[a-z0-9.-]+:\d{1,5}$/, "must be host:port", { lower: true }) });

test("a comma list: trimmed, empty items dropped, lower-cased when asked, unset is empty", () => {
  assert.deepEqual(parseEnv(schema, { HOSTS: " A.example:1, ,b.example:2 ," }, "t").HOSTS, ["a.example:1", "b.example:2"]);
  assert.deepEqual(parseEnv(schema, {}, "t").HOSTS, []);
  assert.deepEqual(parseEnv(schema, { HOSTS: "" }, "t").HOSTS, []);
  const keepCase = z.object({ O: commaList(/^https?:\/\/[^/]+$/i, "must be an origin") });
  assert.deepEqual(parseEnv(keepCase, { O: "https://App.example" }, "t").O, ["https://App.example"]);
});

test("a comma list names every bad item in one error", () => {
  assert.throws(
    () => parseEnv(schema, { HOSTS: "ok.example:1,nope,also bad" }, "t"),
    (e: Error) =>
      /"nope" must be host:port/.test(e.message) && /"also bad" must be host:port/.test(e.message) && !/ok\.example/.test(e.message),
  );
});
