/**
 * The runner's bindings as the gateway sees and shows them: a request that grants a bound secret
 * without one of its hosts is refused at intake (the runner refuses it again), and every
 * human-facing surface names each secret with its hosts and what the skill sees.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { approvalStatement, renderStatementText } from "@oauth3/shared";
import { renderCard } from "../src/telegram/render.ts";
import { gatewayFixture } from "../../test/helpers/gateway-fixture.ts";

const BINDINGS = "FOO api.foo-example.com:443 header:x-foo;BAR env";
const skill = (header: string) => `data:text/typescript,${encodeURIComponent(`${header}\nconsole.log(1)`)}`;

test("a bound secret without one of its hosts in network is a clear 400 at intake; nothing is stored", async () => {
  const fx = gatewayFixture({ bindings: BINDINGS, dispatch: false });
  const res = await fx.post({
    skill_id: "s",
    skill_url: skill("// @secrets FOO\n// @network other.example.com:443"),
    secrets: ["FOO"],
    network: ["other.example.com:443"],
  });
  assert.equal(res.status, 400);
  const body = (await res.json()) as { error: string; code: string };
  assert.equal(body.code, "secret_host_not_granted");
  assert.match(
    body.error,
    /secret FOO may only be used toward api\.foo-example\.com:443 \(the vault-runner's binding\); add one of them to network/,
  );
  assert.equal(fx.store.list(() => true).length, 0);
  // An env-mode secret needs no host.
  const env = await fx.post({ skill_id: "s", skill_url: skill("// @secrets BAR"), secrets: ["BAR"] });
  assert.equal(env.status, 200);
});

test("the statement, the card and the operator's view name each secret with its binding, and flag the env one", async () => {
  const fx = gatewayFixture({ bindings: BINDINGS, dispatch: false });
  const res = await fx.post({
    skill_id: "s",
    skill_url: skill("// @secrets FOO BAR\n// @network api.foo-example.com:443"),
    secrets: ["FOO", "BAR"],
    network: ["api.foo-example.com:443"],
  });
  assert.equal(res.status, 200);
  const { request_id } = (await res.json()) as { request_id: string };
  const stored = fx.store.get(request_id)!;
  assert.deepEqual(stored.secretBindings, [
    { name: "BAR", mode: "env", hosts: [], places: [] },
    { name: "FOO", mode: "placeholder", hosts: ["api.foo-example.com:443"], places: ["header:x-foo"] },
  ]);
  const st = approvalStatement(stored, "console.log(1)", { isolation: "per-run-uid", egress: "proxy+firewall" });
  assert.deepEqual(st.secrets, [
    { name: "BAR", mode: "skill sees the real value" },
    { name: "FOO", hosts: ["api.foo-example.com:443"], mode: "skill sees a placeholder" },
  ]);
  assert.deepEqual(
    st.warnings.map((w) => w.title),
    ["The skill holds a real secret value"],
  );
  const text = renderStatementText(st);
  assert.match(text, /^secrets: {2}BAR \(skill sees the real value\), FOO -> api\.foo-example\.com:443 \(skill sees a placeholder\)$/m);
  assert.match(text, /^WARNING: The skill holds a real secret value: BAR \(bound "env" by the operator\)/m);
  const card = renderCard(st, "console.log(1)").html;
  assert.ok(card.includes("<code>FOO</code> -> api.foo-example.com:443 (skill sees a placeholder)"), card);
  assert.ok(card.includes("<code>BAR</code> (skill sees the real value)"), card);
  assert.ok(card.includes("The skill holds a real secret value"), card);
  // The operator's view (oauth3 show) carries the same statement.
  const shown = (await (await fx.operator.request(`/requests/${request_id}`)).json()) as { statement: typeof st };
  assert.deepEqual(shown.statement.secrets, st.secrets);
  // A shared-uid runner: placeholders protect the environment, not the runner's files; said loudly.
  const weak = approvalStatement(stored, "console.log(1)", { isolation: "shared-uid", egress: "deno-only" });
  assert.ok(weak.warnings.some((w) => w.title === "Shared uid" && /the secrets file included/.test(w.detail)));
});
