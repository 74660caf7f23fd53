// Counts a node:test TAP stream: tests and suites alike (Node 20's own summary omits a skipped
// describe). Prints "<label>: N passed, N failed, N skipped", each skip with its reason, and exits 1
// when anything failed, or when anything was skipped and --no-skips is given.
import { readFileSync } from "node:fs";

const [file, ...flags] = process.argv.slice(2);
if (!file) {
  console.error("usage: node scripts/tap-summary.mjs <file.tap> [--label <name>] [--no-skips]");
  process.exit(2);
}
const label = flags.includes("--label") ? flags[flags.indexOf("--label") + 1] : "tests";
const counts = { passed: 0, failed: 0, skipped: 0 };
const skips = [];
const failures = [];
for (const line of readFileSync(file, "utf8").split("\n")) {
  const m = /^\s*(not ok|ok) \d+ - (.*?)(?: # (SKIP|TODO)\b\s*(.*))?$/.exec(line);
  if (!m) continue;
  if (m[3] === "SKIP") {
    counts.skipped++;
    skips.push(`${m[2]}: ${m[4] || "(no reason)"}`);
  } else if (m[1] === "not ok") {
    counts.failed++;
    failures.push(m[2]);
  } else counts.passed++;
}
for (const s of skips) console.log(`  skipped: ${s}`);
for (const f of failures) console.log(`  failed: ${f}`);
console.log(`${label}: ${counts.passed} passed, ${counts.failed} failed, ${counts.skipped} skipped`);
if (counts.passed === 0) {
  console.log(`${label}: no test ran`);
  process.exit(1);
}
if (counts.failed > 0 || (flags.includes("--no-skips") && counts.skipped > 0)) process.exit(1);
