import { test } from "node:test";
import assert from "node:assert/strict";
import Ajv2020 from "ajv/dist/2020.js";
import { dataUrl, eventually, gatewayFixture } from "../../test/helpers/gateway-fixture.ts";

test("/openapi.json is OpenAPI 3.1 and real responses validate against it (an independent validator)", async () => {
  const fx = gatewayFixture();
  const doc = (await (await fx.app.request("/openapi.json")).json()) as Record<string, any>;
  assert.equal(doc.openapi, "3.1.0");
  assert.deepEqual(Object.keys(doc.paths).sort(), ["/execute", "/execute/{id}/events", "/execute/{id}/status", "/health"]);
  const ajv = new Ajv2020.default({ strict: false, allErrors: true });
  ajv.addSchema({ $id: "doc", components: doc.components });
  const check = (name: string, value: unknown) => {
    const validate = ajv.getSchema(`doc#/components/schemas/${name}`)!;
    assert.ok(validate(value), `${name}: ${ajv.errorsText(validate.errors)}\n${JSON.stringify(value).slice(0, 300)}`);
  };
  const reject = (name: string, value: unknown) =>
    assert.ok(!ajv.getSchema(`doc#/components/schemas/${name}`)!(value), JSON.stringify(value));

  const good = { skill_id: "s", skill_url: dataUrl("// @secrets FOO\nconsole.log(1)"), secrets: ["FOO"], args: { n: 1 } };
  check("ExecuteBody", good);
  reject("ExecuteBody", { skill_url: "x" });
  reject("ExecuteBody", { ...good, skill_id: "a\u202eb" });
  reject("ExecuteBody", { ...good, args: { a: { nested: true } } });

  const accepted = (await (await fx.post(good)).json()) as { request_id: string };
  check("Accepted", accepted);
  const id = accepted.request_id;
  check("Status", await (await fx.app.request(`/execute/${id}/status`)).json());
  await fx.approvals.decide(id, { approve: true, channel: "test", decidedBy: "test:1" });
  await eventually(() => (fx.store.get(id)?.status === "completed" ? true : undefined));
  const done = (await (await fx.app.request(`/execute/${id}/status`)).json()) as Record<string, unknown>;
  assert.ok(done.result, "a result to validate");
  check("Status", done);
  check("Health", await (await fx.app.request("/health")).json());
  check("Error", await (await fx.app.request("/execute/exec_0000000000000000/status")).json());
  check("Error", await (await fx.post({ skill_id: "s" })).json());
});
