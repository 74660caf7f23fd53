/**
 * The examples in integrations/openclaw/SKILL.md, run as an agent would run them: `oauth3 run
 * <file> --wait` against the real gateway and runner, approved by the operator, calling fake
 * Anthropic/GitHub APIs over TLS on 127.0.0.1:443 (the runner's egress proxy maps the real names
 * there; RUNNER_EXTRA_CA_FILE makes Deno trust the test CA). Needs root (port 443, per-run uids).
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { once } from "node:events";
import { readFileSync, writeFileSync } from "node:fs";
import { createServer, type Server } from "node:https";
import { join } from "node:path";
import { freePort, ROOT, Stack } from "./helpers/stack.ts";
import { makeTestCerts } from "./helpers/test-tls.ts";
import { tempDir } from "./helpers/tmp.ts";
import { needs, PROXIED } from "./helpers/sandbox-mode.ts";

const NEEDS_PROXY = needs({ uid: true, proxy: true });
const ANTHROPIC = "sk-ant-example-test-7a1c";
const GITHUB = "ghp_exampletest0b93";
const dir = tempDir("oauth3-examples-");
const seen: Array<{ path: string; key?: string; auth?: string }> = [];
let api: Server;
let stack: Stack;

describe("SKILL.md examples", () => {
  before(async () => {
    writeFileSync(join(dir, "secrets.env"), `ANTHROPIC_API_KEY=${ANTHROPIC}\nGITHUB_TOKEN=${GITHUB}\n`, { mode: 0o600 });
    const env: Record<string, string> = {
      SECRETS_FILE: join(dir, "secrets.env"),
      // Bound as the README shows: the skills see placeholders, the proxy puts the values in.
      RUNNER_BINDINGS:
        "ANTHROPIC_API_KEY api.anthropic.com:443 header:x-api-key;GITHUB_TOKEN api.github.com:443 header:authorization:Bearer",
      TELEGRAM_BOT_TOKEN: "4444444:AAexamples-token",
      RUNNER_SKILL_UID_BASE: "66400",
    };
    // The API examples need the egress proxy (it maps the real API names to the fake on 127.0.0.1:443).
    if (PROXIED) Object.assign(env, await startFakeApis());
    stack = new Stack({ dir, port: await freePort(), env });
    await stack.start();
  });
  after(async () => {
    await stack?.stop();
    api?.close();
  });

  async function startFakeApis(): Promise<Record<string, string>> {
    const certs = makeTestCerts(dir, ["api.anthropic.com", "api.github.com"]);
    api = createServer({ key: certs.key, cert: certs.cert }, (req, res) => {
      seen.push({ path: req.url ?? "", key: req.headers["x-api-key"] as string | undefined, auth: req.headers.authorization });
      res.setHeader("content-type", "application/json");
      if (req.url === "/v1/messages" && req.headers["x-api-key"] === ANTHROPIC) {
        return res.end(JSON.stringify({ content: [{ type: "text", text: "Leaves fall, keys stay home" }] }));
      }
      if (req.url?.startsWith("/user/repos") && req.headers.authorization === `Bearer ${GITHUB}`) {
        return res.end(JSON.stringify([{ full_name: "octo/alpha" }, { full_name: "octo/beta" }]));
      }
      res.writeHead(401).end(JSON.stringify({ error: "bad credentials" }));
    });
    api.listen(443, "127.0.0.1");
    await once(api, "listening");
    return {
      RUNNER_EXTRA_CA_FILE: certs.ca,
      RUNNER_EGRESS_HOSTS: "api.anthropic.com=127.0.0.1,api.github.com=127.0.0.1",
      RUNNER_EGRESS_ALLOW_PRIVATE: "api.anthropic.com:443,api.github.com:443",
    };
  }

  /** `oauth3 run <example> ... --wait` as a separate process, approved by the operator meanwhile. */
  async function runExample(file: string, args: string[], urlVar = "OAUTH3_URL"): Promise<{ code: number; out: string }> {
    const child = spawn(process.execPath, [join(ROOT, "cli/bin/oauth3.js"), "run", join(ROOT, "examples", file), ...args, "--wait"], {
      env: { PATH: process.env.PATH, [urlVar]: stack.baseUrl },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let out = "";
    child.stdout.on("data", (c: Buffer) => (out += c));
    child.stderr.on("data", (c: Buffer) => (out += c));
    const id = await new Promise<string>((resolve, reject) => {
      const t = setInterval(() => {
        const m = /exec_[0-9a-f]{16}/.exec(out);
        if (m) {
          clearInterval(t);
          resolve(m[0]);
        }
      }, 50);
      setTimeout(() => {
        clearInterval(t);
        reject(new Error(`no request id: ${out}`));
      }, 20_000);
    });
    assert.equal(stack.cli("approve", id).code, 0);
    const [code] = (await once(child, "exit")) as [number];
    return { code, out };
  }

  test("the isolation check: NOT ACCESSIBLE (the CLI finds the gateway through the agent's OAUTH3_PROXY_URL)", async () => {
    const r = await runExample("isolation-check.ts", [], "OAUTH3_PROXY_URL");
    assert.equal(r.code, 0, r.out);
    assert.match(r.out, /^NOT ACCESSIBLE$/m);
  });

  test("an LLM API call with ANTHROPIC_API_KEY", { skip: NEEDS_PROXY }, async () => {
    const r = await runExample("claude-haiku.ts", ["--secret", "ANTHROPIC_API_KEY", "--arg", "topic=autumn"]);
    assert.equal(r.code, 0, r.out);
    assert.match(r.out, /^Leaves fall, keys stay home$/m);
    assert.equal(seen.filter((s) => s.path === "/v1/messages" && s.key === ANTHROPIC).length, 1, "the real key reached the API");
  });

  test("a GitHub API call with GITHUB_TOKEN", { skip: NEEDS_PROXY }, async () => {
    const r = await runExample("github-repos.ts", ["--secret", "GITHUB_TOKEN"]);
    assert.equal(r.code, 0, r.out);
    assert.match(r.out, /^octo\/alpha\nocto\/beta$/m);
  });

  test("SKILL.md shows exactly these examples, and nothing leaked", () => {
    const skill = readFileSync(join(ROOT, "integrations/openclaw/SKILL.md"), "utf8");
    assert.match(skill, /^---\nname: oauth3-proxy\ndescription: .+\n---\n/);
    for (const file of ["isolation-check.ts", "claude-haiku.ts", "github-repos.ts"]) {
      assert.ok(skill.includes(readFileSync(join(ROOT, "examples", file), "utf8")), `${file} is in SKILL.md verbatim`);
    }
    for (const s of [ANTHROPIC, GITHUB]) assert.ok(!stack.log().includes(s));
  });
});
