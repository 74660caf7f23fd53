/**
 * A real full disk under the gateway's LMDB (a 1 MiB tmpfs, so root only; CI runs as root): the
 * write that cannot be recorded is refused, nothing half-happens, the chain stays whole, and the
 * gateway stays up (lmdb-js's stray commit rejection, kriszyp/lmdb-js#368, does not kill it).
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdirSync } from "node:fs";
import { request } from "node:http";
import { join } from "node:path";
import type { AuditEvent } from "../shared/src/index.ts";
import { freePort, Stack } from "./helpers/stack.ts";
import { tempDir } from "./helpers/tmp.ts";

const ROOT_USER = process.getuid?.() === 0;
if (!ROOT_USER) console.error("\n*** NOT ROOT: the disk-full test needs to mount a tmpfs; skipped ***\n");

const dir = tempDir("oauth3-diskfull-"); // file level: removed after the suite unmounts

/** A 1 MiB tmpfs at `path`: a disk that fills after a few requests. */
function mountSmallTmpfs(path: string): void {
  mkdirSync(path);
  const m = spawnSync("mount", ["-t", "tmpfs", "-o", "size=1m,mode=0700", "tmpfs", path], { encoding: "utf8" });
  assert.equal(m.status, 0, m.stderr);
}

describe("gateway on a full disk", { skip: !ROOT_USER && "needs root to mount a small tmpfs" }, () => {
  const small = join(dir, "small");
  let stack: Stack;

  before(async () => {
    mountSmallTmpfs(small);
    stack = new Stack({ dir, port: await freePort(), env: { DB_PATH: join(small, "gateway-db"), RUNNER_SKILL_UID_BASE: "66800" } });
    await stack.start();
  });
  after(async () => {
    await stack?.stop();
    spawnSync("umount", [small]);
  });

  test("a submission that cannot be recorded is refused; the gateway stays up and the chain whole", async () => {
    const big = (n: number) => `data:text/typescript,${encodeURIComponent(`// ${n}\n${"console.log('filler');\n".repeat(8000)}`)}`;
    const accepted: string[] = [];
    let refused: { status: number; json: Record<string, unknown> } | undefined;
    for (let n = 0; n < 40 && !refused; n++) {
      const r = await stack.post({ skill_id: `filler-${n}`, skill_url: big(n) });
      if (r.status === 200) accepted.push(String(r.json.request_id));
      else refused = r;
    }
    assert.ok(refused, "the disk never filled");
    assert.ok(accepted.length >= 1, "some requests fit before the disk was full");
    assert.equal(refused.status, 500, JSON.stringify(refused.json));
    assert.match(String(refused.json.error), /.+/);
    assert.doesNotMatch(JSON.stringify(refused.json), /commitError|write\.js/, "no internals leak to the agent");

    // Still serving, and what was accepted is all still there, each with its audit entry.
    assert.equal((await fetch(`${stack.baseUrl}/health`)).status, 200);
    for (const id of accepted) assert.equal((await stack.status(id)).status, "pending");
    const audit = await stack.cliAsync("audit", "--json");
    assert.equal(audit.code, 0, audit.out.slice(-500));
    const { events, verdict } = JSON.parse(audit.out) as { events: AuditEvent[]; verdict: { ok: boolean } };
    assert.equal(verdict.ok, true);
    assert.deepEqual(
      events.filter((e) => e.type === "request_received").map((e) => e.requestId),
      accepted,
      "no entry without its request, no request without its entry",
    );
    const list = await stack.cliAsync("list", "--json");
    assert.equal((JSON.parse(list.out) as { requests: unknown[] }).requests.length, accepted.length);

    // The failure is counted for operators.
    const metrics = await new Promise<string>((resolve, reject) => {
      request({ socketPath: stack.operatorSocket, path: "/metrics" }, (res) => {
        let body = "";
        res.on("data", (c: Buffer) => (body += c.toString("utf8")));
        res.on("end", () => resolve(body));
      })
        .on("error", reject)
        .end();
    });
    assert.match(metrics, /oauth3_audit_write_failures_total [1-9]/);
    assert.doesNotMatch(stack.log(), /unhandled rejection/);
  });
});

describe("gateway background writes on a full disk", { skip: !ROOT_USER && "needs root to mount a small tmpfs" }, () => {
  const small = join(dir, "small-expiry");
  let stack: Stack;

  before(async () => {
    mountSmallTmpfs(small);
    stack = new Stack({
      dir: join(dir, "expiry"),
      port: await freePort(),
      env: { DB_PATH: join(small, "gateway-db"), RUNNER_SKILL_UID_BASE: "66820", APPROVAL_TTL_SECONDS: "10" },
    });
    mkdirSync(join(dir, "expiry"));
    await stack.start();
  });
  after(async () => {
    await stack?.stop();
    spawnSync("umount", [small]);
  });

  test("expiries that cannot be written neither stop the gateway nor its restart; they land once there is room", async () => {
    // Fill the disk down to the last page: big submissions, then ever smaller ones, until even a
    // one-line skill is refused.
    const accepted: string[] = [];
    for (const lines of [8000, 1000, 100, 1]) {
      for (let n = 0; n < 200; n++) {
        const code = `// ${lines}-${n}\n${"console.log('filler');\n".repeat(lines)}`;
        const r = await stack.post({ skill_id: `fill-${lines}-${n}`, skill_url: `data:text/typescript,${encodeURIComponent(code)}` });
        if (r.status !== 200) break;
        accepted.push(String(r.json.request_id));
      }
    }
    assert.ok(accepted.length > 0);
    // Every accepted request expires now; the 5 s sweep cannot record it. Before: the rejection
    // killed the gateway within a sweep.
    await new Promise((r) => setTimeout(r, 16_000));
    assert.equal((await fetch(`${stack.baseUrl}/health`)).status, 200, "still serving after failed sweeps");
    assert.match(stack.log(), /expiry sweep could not record every expiry/);
    // Expired in time means never approvable, recorded or not.
    const late = await stack.cliAsync("approve", accepted[0]!);
    assert.notEqual(late.code, 0, late.out);
    assert.equal(spawnSync("pgrep", ["-f", `deno.*${accepted[0]}`]).status, 1, "nothing ran");

    // A restart with the disk still full: start-up's own sweep fails, and the gateway comes up.
    assert.equal(await stack.stop(), 0);
    await stack.start();
    assert.equal((await fetch(`${stack.baseUrl}/health`)).status, 200, "starts on a full disk");

    // Room again: the next sweep records every expiry, and the chain is whole.
    assert.equal(spawnSync("mount", ["-o", "remount,size=8m", small]).status, 0);
    const deadline = Date.now() + 20_000;
    while ((await stack.status(accepted.at(-1)!)).status !== "expired") {
      assert.ok(Date.now() < deadline, "the expiries were recorded once the disk had room");
      await new Promise((r) => setTimeout(r, 250));
    }
    for (const id of accepted) assert.equal((await stack.status(id)).status, "expired", id);
    const audit = await stack.cliAsync("audit", "--json");
    assert.equal(audit.code, 0, audit.out.slice(-500));
    assert.doesNotMatch(stack.log(), /unhandled rejection/);
  });
});
