/**
 * npm run bench:waits: the gateway's memory under dropped long-polls, the load issue 14 reproduced
 * (40,000 `?wait=60` requests whose clients leave at once, never more than 200 sockets open).
 * Prints the gateway's RSS before, at its peak and after, and the share of requests refused.
 * Run it on two commits to compare; not part of npm test.
 */
import { connect } from "node:net";
import { readFileSync } from "node:fs";
import { freePort, Stack } from "../test/helpers/stack.ts";
import { tempDir } from "../test/helpers/tmp.ts";

const TOTAL = Number(process.env.BENCH_WAITS ?? 40_000);
const OPEN = 200;
const rssMb = (pid: number) => Number(/^VmRSS:\s+(\d+)/m.exec(readFileSync(`/proc/${pid}/status`, "utf8"))![1]) / 1024;

const stack = new Stack({
  dir: tempDir("oauth3-bench-waits-"),
  port: await freePort(),
  env: { LOG_LEVEL: "warn", SUBMISSIONS_PER_MINUTE: "1000" },
});
await stack.start();
try {
  const { json } = await stack.post({ skill_id: "slow", skill_url: "data:text/typescript,console.log(1)" });
  const path = `/execute/${String(json.request_id)}/status?wait=60`;
  const [, gateway] = stack.childPids();
  const url = new URL(stack.baseUrl);
  const before = rssMb(gateway);
  let peak = before;
  const sampler = setInterval(() => (peak = Math.max(peak, rssMb(gateway))), 50);
  let sent = 0;
  const started = Date.now();
  const one = () =>
    new Promise<void>((resolve) => {
      const socket = connect(Number(url.port), url.hostname, () => {
        socket.write(`GET ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n`, () =>
          setTimeout(() => {
            socket.destroy();
            resolve();
          }, 2),
        );
      });
      socket.on("error", () => resolve());
    });
  await Promise.all(
    Array.from({ length: OPEN }, async () => {
      while (sent < TOTAL) {
        sent++;
        await one();
      }
    }),
  );
  const seconds = (Date.now() - started) / 1000;
  await new Promise((r) => setTimeout(r, 3000));
  clearInterval(sampler);
  const after = rssMb(gateway);
  const health = await fetch(`${stack.baseUrl}/health`);
  console.log(
    JSON.stringify({
      requests: TOTAL,
      seconds: Math.round(seconds * 10) / 10,
      rssMb: { before: Math.round(before), peak: Math.round(peak), after3s: Math.round(after) },
      healthAfter: health.status,
    }),
  );
} finally {
  await stack.stop();
}
