/**
 * npm run bench:egress: what substituting a placeholder at egress costs. A Deno skill makes 20
 * HTTPS requests to a bound host (a local TLS server) through the runner's egress proxy, once as a
 * run that holds a placeholder (TLS intercepted with the runner's CA, the value put into a header,
 * the answer scrubbed) and once through a plain CONNECT tunnel, alternating, BENCH_ROUNDS times.
 * Reports p50 of the first request (new connections; the leaf certificate is cached after the
 * first round) and of requests 2..20 (kept alive), side by side. Writes bench/out/egress.json.
 */
import { once } from "node:events";
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { createServer } from "node:https";
import { join } from "node:path";
import { pino } from "pino";
import { runDenoStdin } from "../test/helpers/deno-stdin.ts";
import { makeTestCerts } from "../test/helpers/test-tls.ts";
import { ROOT } from "../test/helpers/stack.ts";
import { parseBinding } from "../vault-runner/src/bindings.ts";
import { EgressCa } from "../vault-runner/src/egress-ca.ts";
import { EgressProxy } from "../vault-runner/src/egress-proxy.ts";
import { type HeldSecret, newPlaceholder } from "../vault-runner/src/placeholders.ts";

const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 15);
const REQUESTS = 20;
const HOST = "api.bench-egress.example";
const VALUE = "bench-secret-value-0123456789abcdef";

const quantile = (xs: number[], q: number) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(q * (s.length - 1) + 0.5))]!;
};
const round2 = (x: number) => Math.round(x * 100) / 100;

async function main(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), "oauth3-bench-egress-"));
  const certs = makeTestCerts(dir, [HOST]);
  const api = createServer({ key: certs.key, cert: certs.cert, keepAlive: true }, (req, res) => {
    res.end(req.headers["x-api-key"] === VALUE ? "ok" : "no");
  });
  let upstreamConnections = 0;
  api.on("secureConnection", () => upstreamConnections++);
  api.listen(0, "127.0.0.2");
  await once(api, "listening");
  const port = (api.address() as { port: number }).port;
  const hostPort = `${HOST}:${port}`;
  const ca = await EgressCa.create();
  const proxy = new EgressProxy({
    allowPrivate: new Set([hostPort]),
    staticHosts: new Map([[HOST, "127.0.0.2"]]),
    logger: pino({ level: "silent" }),
    ca,
    extraUpstreamCa: readFileSync(certs.ca, "utf8"),
  });
  await proxy.start();
  const bundle = join(dir, "skill-ca.pem");
  writeFileSync(bundle, `${ca.certPem}\n${readFileSync(certs.ca, "utf8")}`);
  const binding = parseBinding("API_KEY", `${hostPort} header:x-api-key`, "bench");
  if (binding.mode !== "placeholder") throw new Error("unreachable");

  const skill = `const key = Deno.env.get("API_KEY")!; const t: number[] = [];
for (let i = 0; i < ${REQUESTS}; i++) {
  const s = performance.now();
  const r = await fetch("https://${hostPort}/v1/x", { headers: { "x-api-key": key } });
  if ((await r.text()) !== "ok") throw new Error("bad answer " + r.status);
  t.push(performance.now() - s);
}
console.log(JSON.stringify(t));`;

  async function runOnce(substitute: boolean): Promise<number[]> {
    const placeholder = newPlaceholder();
    const held: HeldSecret[] = substitute
      ? [{ name: "API_KEY", value: VALUE, placeholder, binding: binding as Extract<typeof binding, { mode: "placeholder" }> }]
      : [];
    const lease = proxy.lease(`bench_${substitute}`, [hostPort], held);
    try {
      const { status, stdout, stderr } = await runDenoStdin(
        dir,
        [`--allow-net=${hostPort}`, "--allow-env=API_KEY"],
        {
          HTTPS_PROXY: lease.proxyUrl,
          DENO_CERT: substitute ? bundle : certs.ca,
          // Through the tunnel the skill talks to the API itself, so it must hold the value there.
          API_KEY: substitute ? placeholder : VALUE,
        },
        skill,
      );
      if (status !== 0) throw new Error(`skill failed (${status}): ${stderr}`);
      return JSON.parse(stdout) as number[];
    } finally {
      lease.release();
    }
  }

  // Each run should open one upstream connection and keep it for all its requests.
  let reusedUpstream = true;
  const first = { substituted: [] as number[], tunnel: [] as number[] };
  const kept = { substituted: [] as number[], tunnel: [] as number[] };
  await runOnce(true); // warm-up: Deno's cache, the leaf certificate
  await runOnce(false);
  for (let r = 0; r < ROUNDS; r++) {
    for (const substitute of r % 2 === 0 ? [true, false] : [false, true]) {
      const before = upstreamConnections;
      const t = await runOnce(substitute);
      reusedUpstream &&= upstreamConnections - before === 1;
      const key = substitute ? "substituted" : "tunnel";
      first[key].push(t[0]!);
      kept[key].push(...t.slice(1));
    }
  }
  const result = {
    rounds: ROUNDS,
    requestsPerRun: REQUESTS,
    oneUpstreamConnectionPerRun: reusedUpstream,
    firstRequestP50Ms: { substituted: round2(quantile(first.substituted, 0.5)), tunnel: round2(quantile(first.tunnel, 0.5)) },
    keptAliveP50Ms: { substituted: round2(quantile(kept.substituted, 0.5)), tunnel: round2(quantile(kept.tunnel, 0.5)) },
    keptAliveP90Ms: { substituted: round2(quantile(kept.substituted, 0.9)), tunnel: round2(quantile(kept.tunnel, 0.9)) },
  };
  const added = {
    firstRequestMs: round2(result.firstRequestP50Ms.substituted - result.firstRequestP50Ms.tunnel),
    keptAliveMs: round2(result.keptAliveP50Ms.substituted - result.keptAliveP50Ms.tunnel),
  };
  mkdirSync(join(ROOT, "bench/out"), { recursive: true });
  writeFileSync(join(ROOT, "bench/out/egress.json"), `${JSON.stringify({ ...result, added }, null, 2)}\n`);
  console.log(JSON.stringify({ ...result, added }, null, 2));
  await proxy.stop();
  api.close();
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
