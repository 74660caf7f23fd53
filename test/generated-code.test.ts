import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { cpSync, readdirSync, readFileSync } from "node:fs";
import { join, relative } from "node:path";
import { ROOT } from "./helpers/stack.ts";
import { tempDir } from "./helpers/tmp.ts";

function files(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true, recursive: true })
    .filter((e) => e.isFile())
    .map((e) => relative(dir, join(e.parentPath, e.name)))
    .sort();
}

test("committed generated code is exactly what buf generate makes from the .proto", () => {
  const work = tempDir("oauth3-gen-");
  const proto = join(ROOT, "proto");
  for (const f of ["buf.yaml", "buf.gen.yaml", "oauth3"]) cpSync(join(proto, f), join(work, f), { recursive: true });
  const bin = join(ROOT, "node_modules", ".bin");
  const env = { ...process.env, PATH: `${bin}:${process.env.PATH}` };
  for (const args of [["lint"], ["generate"]]) {
    const r = spawnSync(join(bin, "buf"), args, { cwd: work, env, encoding: "utf8", timeout: 120_000 });
    assert.equal(r.status, 0, `buf ${args.join(" ")}: ${r.stderr}`);
  }
  const committed = join(proto, "gen");
  const fresh = join(work, "gen");
  assert.deepEqual(files(fresh), files(committed));
  for (const f of files(committed)) {
    assert.equal(readFileSync(join(fresh, f), "utf8"), readFileSync(join(committed, f), "utf8"), `${f} is stale: run npm run generate`);
  }
});
