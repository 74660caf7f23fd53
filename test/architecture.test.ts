/**
 * ARCHITECTURE.md's size columns are checked against the tree: the file count exactly, the line
 * count within 15%. A room that grows or splits fails here until the page says so (the message
 * gives the numbers to write).
 */
import assert from "node:assert/strict";
import { readdirSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import { ROOT } from "./helpers/stack.ts";

const WORKSPACES: Record<string, string[]> = {
  "`gateway/`": ["gateway/src"],
  "`vault-runner/`": ["vault-runner/src"],
  "`shared/`": ["shared/src"],
  "`proto/`": ["proto"],
  "`cli/`": ["cli/src"],
  "`main.ts`": ["gateway/src/main.ts"],
  "`config.ts`, `errors.ts`": ["gateway/src/config.ts", "gateway/src/errors.ts"],
};

function tsFiles(path: string): string[] {
  const full = join(ROOT, path);
  if (statSync(full).isFile()) return [full];
  return readdirSync(full, { recursive: true, encoding: "utf8" })
    .filter((f) => f.endsWith(".ts") && !f.includes("node_modules"))
    .map((f) => join(full, f));
}

function measure(paths: string[]): { files: number; lines: number } {
  const files = paths.flatMap(tsFiles);
  const lines = files.reduce((n, f) => n + readFileSync(f, "utf8").split("\n").length - 1, 0);
  return { files: files.length, lines };
}

test("ARCHITECTURE.md states each workspace's and room's size as it is", () => {
  const rows = readFileSync(join(ROOT, "ARCHITECTURE.md"), "utf8")
    .split("\n")
    .filter((l) => l.startsWith("| `"));
  const checked: string[] = [];
  const wrong: string[] = [];
  for (const row of rows) {
    const cells = row.split("|").map((c) => c.trim());
    const name = cells[1]!;
    const size = cells.map((c) => /^(\d+) \/ ([\d,]+)/.exec(c)).find(Boolean);
    assert.ok(size, `no "files / lines" cell in: ${row}`);
    const room = /^`([a-z]+)\/`$/.exec(name);
    const paths = WORKSPACES[name] ?? (room ? [`gateway/src/${room[1]}`] : undefined);
    assert.ok(paths, `ARCHITECTURE.md names ${name}, which this test does not know`);
    const real = measure(paths);
    const [files, lines] = [Number(size[1]), Number(size[2]!.replace(/,/g, ""))];
    if (files !== real.files || Math.abs(lines - real.lines) > real.lines * 0.15) {
      wrong.push(`${name}: says ${files} / ${lines}, is ${real.files} / ${real.lines}`);
    }
    checked.push(name);
  }
  assert.deepEqual(wrong, []);
  // Every gateway room on disk has a row.
  const rooms = readdirSync(join(ROOT, "gateway/src"), { withFileTypes: true }).filter((d) => d.isDirectory());
  for (const d of rooms) assert.ok(checked.includes(`\`${d.name}/\``), `gateway/src/${d.name}/ has no row in ARCHITECTURE.md`);
  assert.ok(checked.length >= 14, `only ${checked.length} rows checked`);
});
