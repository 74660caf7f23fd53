/**
 * The attack from a web page, in real Chromium (Debian's, driven by playwright-core): someone on the
 * machine opens a malicious page while `npm start` runs. The page tries every request a browser lets
 * it send to 127.0.0.1 without the user's consent: simple cross-site POSTs (text/plain, a form,
 * no-cors), a JSON POST (preflighted), and, as a DNS-rebinding page whose name resolves to 127.0.0.1,
 * same-origin reads and writes. Nothing may be stored, no card made, and the rebinding page may read
 * nothing.
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { createServer, type Server } from "node:http";
import { once } from "node:events";
import { freePort, Stack } from "./helpers/stack.ts";
import { tempDir } from "./helpers/tmp.ts";

const CHROMIUM = "/usr/bin/chromium";
const NO_CHROMIUM = !existsSync(CHROMIUM) && "needs Debian's Chromium: apt-get install chromium";
if (NO_CHROMIUM) process.stderr.write(`SKIPPED (this machine): ${NO_CHROMIUM}\n`);

const dir = tempDir("oauth3-browser-");
let stack: Stack;
let page: Server;
let pagePort = 0;

/** The attacker's page: fires every request it can at the gateway and reports what it could read. */
const evil = (gateway: string) => `<!doctype html><meta charset="utf-8"><title>cute cats</title>
<form id="f" method="POST" action="${gateway}/execute" enctype="text/plain" target="sink">
  <input name='{"skill_id":"form","skill_url":"data:,console.log(1)","x":"' value='"}'>
</form><iframe name="sink"></iframe>
<script>
const body = JSON.stringify({ skill_id: "page", skill_url: "data:,console.log('from a page')" });
const report = {};
async function attempt(name, fn) {
  try { const r = await fn(); report[name] = r.type === "opaque" ? "opaque" : r.status + " " + (await r.text()).slice(0, 200); }
  catch (e) { report[name] = "blocked: " + e.message; }
}
window.run = async () => {
  await attempt("text/plain no-cors", () => fetch("${gateway}/execute", { method: "POST", mode: "no-cors", headers: { "content-type": "text/plain" }, body }));
  await attempt("json cors", () => fetch("${gateway}/execute", { method: "POST", headers: { "content-type": "application/json" }, body }));
  await attempt("read health", () => fetch("${gateway}/health"));
  document.getElementById("f").submit();
  await new Promise((r) => setTimeout(r, 1000));
  return report;
};
</script>`;

describe("a web page attacking the gateway, in real Chromium", { skip: NO_CHROMIUM }, () => {
  before(async () => {
    stack = new Stack({ dir, port: await freePort(), env: { RUNNER_SKILL_UID_BASE: "67400" } });
    await stack.start();
    page = createServer((req, res) => {
      const host = req.headers.host ?? "";
      // The same page, served as the attacker's own site or under the rebinding name.
      const gateway = host.startsWith("rebind.") ? "" : stack.baseUrl;
      res.writeHead(200, { "content-type": "text/html" }).end(evil(gateway));
    });
    page.listen(0, "127.0.0.1");
    await once(page, "listening");
    pagePort = (page.address() as { port: number }).port;
  });
  after(async () => {
    page?.close();
    await stack?.stop();
  });

  test("cross-site requests and a DNS-rebinding page store nothing, make no card and read nothing", async () => {
    const { chromium } = await import("playwright-core");
    const browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: [
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        // DNS rebinding, made deterministic: the attacker's name resolves to the machine itself.
        "--host-resolver-rules=MAP rebind.evil.test 127.0.0.1",
      ],
    });
    try {
      const before = JSON.parse(stack.cli("list", "--json").out).requests.length;
      const context = await browser.newContext();
      const tab = await context.newPage();
      // 1. The attacker's own site (another origin than the gateway).
      await tab.goto(`http://127.0.0.1:${pagePort}/`);
      const crossSite = (await tab.evaluate("window.run()")) as Record<string, string>;
      // 2. The rebinding page: its origin is rebind.evil.test:<gateway port>, its requests same-origin.
      await tab.goto(`http://rebind.evil.test:${stack.options.port}/`).catch(() => undefined);
      const rebound = await tab.evaluate(async () => {
        const r = await fetch("/health");
        const w = await fetch("/execute", {
          method: "POST",
          headers: { "content-type": "application/json" },
          body: JSON.stringify({ skill_id: "rebind", skill_url: "data:,console.log(1)" }),
        });
        return { health: `${r.status} ${(await r.text()).slice(0, 120)}`, submit: `${w.status}` };
      });
      await context.close();

      // The JSON POST was preflighted and the preflight refused: the browser never sent it.
      assert.match(crossSite["json cors"]!, /^blocked/, JSON.stringify(crossSite));
      // A cross-origin read gets no body (and the gateway refused it anyway).
      assert.match(crossSite["read health"]!, /^blocked/, JSON.stringify(crossSite));
      assert.equal(crossSite["text/plain no-cors"], "opaque");
      // The rebinding page reached the gateway but was refused by its Host check, read and write.
      assert.match(rebound.health, /^403 .*is not a name this gateway serves/, JSON.stringify(rebound));
      assert.equal(rebound.submit, "403");
      // The simple requests did reach the gateway, and were refused there, saying why.
      const refusals = stack
        .log()
        .split("\n")
        .filter((l) => l.includes('"msg":"refused a request from a web page"'));
      const by = (code: string) => refusals.filter((l) => l.includes(`"code":"${code}"`) && l.includes('"method":"POST"')).length;
      assert.ok(by("forbidden_origin") >= 2, `the no-cors POST and the form were refused by Origin:\n${refusals.join("\n")}`);
      assert.ok(by("forbidden_host") >= 1, `the rebinding POST was refused by Host:\n${refusals.join("\n")}`);
      // Nothing stored, no card (no request ever reached intake).
      assert.equal(JSON.parse(stack.cli("list", "--json").out).requests.length, before, "no request was stored");
      assert.doesNotMatch(stack.log(), /"msg":"request received"/);
    } finally {
      await browser.close();
    }
  });
});
