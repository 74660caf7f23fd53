/**
 * npm run bench: how fast and how light, as ratios measured side by side in one run (the machine is
 * shared and noisy). Writes docs/benchmarks.md and bench/out/results.json. Not part of npm test.
 */
import { spawn, execFileSync } from "node:child_process";
import { once } from "node:events";
import { chmodSync, chownSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { request } from "node:http";
import { cpus, tmpdir } from "node:os";
import { join } from "node:path";
import autocannon from "autocannon";
import { pino } from "pino";
import { createRunnerClient } from "../gateway/src/runs/runner-client.ts";
import { resolveRunSpec, sha256Hex } from "../shared/src/index.ts";
import { buildInvocation } from "../vault-runner/src/deno-invocation.ts";
import { denoVersion, resolveDenoBinary } from "../vault-runner/src/deno-binary.ts";
import type { ExecutionResult, SkillExecutor } from "../vault-runner/src/executor.ts";
import { RunLedger } from "../vault-runner/src/ledger.ts";
import { RunQueue } from "../vault-runner/src/run-queue.ts";
import { SecretStore } from "../vault-runner/src/secrets.ts";
import { SigningKey } from "@oauth3/shared/signing-key";
import { startRunnerServer } from "../vault-runner/src/server.ts";
import { registerRunnerService } from "../vault-runner/src/service.ts";
import { freePort, ROOT, Stack } from "../test/helpers/stack.ts";

const PAIRS = Number(process.env.BENCH_PAIRS ?? 21);
const out: Record<string, unknown> = {};
const work = mkdtempSync(join(tmpdir(), "oauth3-bench-"));
chmodSync(work, 0o711);
const quantile = (xs: number[], q: number) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(q * (s.length - 1) + 0.5))]!;
};
const ms = (x: number) => Math.round(x * 10) / 10;
const rssMb = (pid: number) => Number(/^VmRSS:\s+(\d+)/m.exec(readFileSync(`/proc/${pid}/status`, "utf8"))![1]) / 1024;
const data = (code: string) => `data:text/typescript,${encodeURIComponent(code)}`;

function operator(stack: Stack, path: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const req = request({ socketPath: stack.operatorSocket, method: "POST", path }, (res) => {
      res.resume();
      res.on("end", () => resolve());
    });
    req.on("error", reject);
    req.end();
  });
}

async function submit(stack: Stack, code: string, n: number): Promise<string> {
  const { status, json } = await stack.post({ skill_id: "bench", skill_url: data(code), args: { n: String(n) } });
  if (status !== 200) throw new Error(JSON.stringify(json));
  return String(json.request_id);
}

async function waitDone(stack: Stack, id: string): Promise<Record<string, any>> {
  for (;;) {
    const r = (await (await fetch(`${stack.baseUrl}/execute/${id}/status?wait=60`)).json()) as Record<string, any>;
    if (!["pending", "approved", "executing"].includes(r.status)) return r;
  }
}

async function main(): Promise<void> {
  const deno = resolveDenoBinary();
  out.machine = {
    cpus: cpus().length,
    model: cpus()[0]?.model,
    node: process.version,
    deno: denoVersion(deno),
    root: process.getuid?.() === 0,
    date: new Date().toISOString(),
  };
  const stack = new Stack({
    dir: work,
    port: await freePort(),
    env: {
      LOG_LEVEL: "warn",
      RUNNER_SKILL_UID_BASE: "66000",
      RUNNER_MAX_CONCURRENT: "64",
      RUNNER_MAX_QUEUE: "64",
      SUBMISSIONS_PER_MINUTE: "100000",
      MAX_PENDING_REQUESTS: "10000",
    },
  });
  await stack.start();
  const [runnerPid, gatewayPid] = stack.childPids();
  await new Promise((r) => setTimeout(r, 1000));
  const idle = { gateway: rssMb(gatewayPid), runner: rssMb(runnerPid) };

  // P1: approval-to-result through gateway + runner vs a bare deno run (same argv, env, uid), alternated.
  const code = "console.log(1)";
  const spec = resolveRunSpec({ secrets: [], args: [{ name: "n", value: "0" }], timeoutSeconds: 30 }, {}, 300);
  const bareDir = join(work, "bare");
  mkdirSync(join(bareDir, "home"), { recursive: true, mode: 0o755 });
  mkdirSync(join(bareDir, "deno-dir"), { recursive: true, mode: 0o755 });
  chmodSync(bareDir, 0o755);
  writeFileSync(join(bareDir, "skill.ts"), code, { mode: 0o644 });
  const inv = buildInvocation(
    spec,
    new Map(),
    { skillFile: join(bareDir, "skill.ts"), homeDir: join(bareDir, "home"), denoDir: join(bareDir, "deno-dir") },
    { v8MaxOldSpaceMb: 128, proxyUrl: "http://run:x@127.0.0.1:9" },
  );
  const asRoot = process.getuid?.() === 0;
  const bare = async () => {
    // The same fresh, private DENO_DIR the runner gives each run, prepared outside the timing.
    rmSync(join(bareDir, "deno-dir"), { recursive: true, force: true });
    mkdirSync(join(bareDir, "deno-dir"), { mode: 0o700 });
    if (asRoot) chownSync(join(bareDir, "deno-dir"), 66900, 66900);
    const t0 = performance.now();
    const child = spawn(deno, inv.args, {
      env: inv.env,
      cwd: join(bareDir, "home"),
      stdio: "ignore",
      detached: true,
      ...(asRoot && { uid: 66900, gid: 66900 }),
    });
    await once(child, "close");
    return performance.now() - t0;
  };
  const system = async (i: number) => {
    const id = await submit(stack, code, i);
    const t0 = performance.now();
    const done = operator(stack, `/requests/${id}/approve`);
    const final = await waitDone(stack, id);
    await done;
    if (final.status !== "completed") throw new Error(JSON.stringify(final));
    return performance.now() - t0;
  };
  await bare();
  await system(-1); // warm-up
  const sys: number[] = [];
  const flo: number[] = [];
  for (let i = 0; i < PAIRS; i++) {
    if (i % 2 === 0) {
      sys.push(await system(i));
      flo.push(await bare());
    } else {
      flo.push(await bare());
      sys.push(await system(i));
    }
  }
  out.p1 = {
    pairs: PAIRS,
    system_ms: { p50: ms(quantile(sys, 0.5)), p90: ms(quantile(sys, 0.9)) },
    bare_deno_ms: { p50: ms(quantile(flo, 0.5)), p90: ms(quantile(flo, 0.9)) },
    ratio_p50: ms((quantile(sys, 0.5) / quantile(flo, 0.5)) * 100) / 100,
    ratio_p90: ms((quantile(sys, 0.9) / quantile(flo, 0.9)) * 100) / 100,
  };

  // P2: status reads vs a bare hono hello-world, each its own process, same load.
  const statusId = await submit(stack, code, 99_999);
  await operator(stack, `/requests/${statusId}/approve`);
  const statusDocument = await waitDone(stack, statusId);
  const helloPort = await freePort();
  const hello = spawn(process.execPath, ["--import", import.meta.resolve("tsx"), join(ROOT, "bench/hello.ts")], {
    env: { PATH: process.env.PATH, PORT: String(helloPort), STATUS_DOCUMENT: JSON.stringify(statusDocument) },
    stdio: ["ignore", "pipe", "inherit"],
  });
  await once(hello.stdout!, "data");
  const load = async (url: string, extra: Partial<autocannon.Options> = {}) => {
    const r = await autocannon({ url, connections: 32, duration: 5, ...extra });
    return { rps: Math.round(r.requests.average), p99_ms: r.latency.p99, errors: r.errors, non2xx: r.non2xx };
  };
  const ceilingA = await load(`http://127.0.0.1:${helloPort}/`);
  const status = await load(`${stack.baseUrl}/execute/${statusId}/status`);
  const ceilingB = await load(`http://127.0.0.1:${helloPort}/`);
  const ceiling = { rps: Math.round((ceilingA.rps + ceilingB.rps) / 2), p99_ms: Math.max(ceilingA.p99_ms, ceilingB.p99_ms) };
  const sameSize = await load(`http://127.0.0.1:${helloPort}/same`);
  let n = 200_000;
  const accept = await load(`${stack.baseUrl}/execute`, {
    connections: 8,
    duration: 5,
    method: "POST",
    headers: { "content-type": "application/json" },
    requests: [
      {
        setupRequest: (req: any) => ({
          ...req,
          body: JSON.stringify({ skill_id: "bench", skill_url: data(code), args: { n: String(n++) } }),
        }),
      },
    ],
  } as Partial<autocannon.Options>);
  hello.kill();
  out.p2 = {
    status,
    hello_world: ceiling,
    ratio_rps: ms((status.rps / ceiling.rps) * 100) / 100,
    same_size_document: sameSize,
    ratio_vs_same_size: ms((status.rps / sameSize.rps) * 100) / 100,
    post_execute: accept,
  };
  const afterP2 = { gateway: rssMb(gatewayPid), runner: rssMb(runnerPid) };

  // P4 (+1000 stored requests) on a fresh count: the POST load above already stored thousands.
  const storedAfterP2 = JSON.parse(
    execFileSync(process.execPath, [join(ROOT, "cli/bin/oauth3.js"), "list", "--json"], {
      env: { ...process.env, OPERATOR_SOCKET: stack.operatorSocket },
      maxBuffer: 1 << 30,
    }).toString(),
  ).requests.length;

  // P3: 64 one-second skills approved at once (limit 64), then 140 at once (64 run, 64 queue, the rest refused).
  const sleeper = "await new Promise((r) => setTimeout(r, 1000)); console.log('done')";
  const burst = async (count: number, base: number) => {
    const ids = await Promise.all(Array.from({ length: count }, (_, i) => submit(stack, sleeper, base + i)));
    let peak = { gateway: 0, runner: 0 };
    const sampler = setInterval(() => {
      peak = { gateway: Math.max(peak.gateway, rssMb(gatewayPid)), runner: Math.max(peak.runner, rssMb(runnerPid)) };
    }, 100);
    const t0 = performance.now();
    await Promise.all(ids.map((id) => operator(stack, `/requests/${id}/approve`)));
    const finals = await Promise.all(ids.map((id) => waitDone(stack, id)));
    const wall = performance.now() - t0;
    clearInterval(sampler);
    const by: Record<string, number> = {};
    for (const f of finals)
      by[`${f.status}${f.error ? `: ${f.error}` : ""}`] = (by[`${f.status}${f.error ? `: ${f.error}` : ""}`] ?? 0) + 1;
    return {
      count,
      wall_ms: Math.round(wall),
      outcomes: by,
      peak_rss_mb: { gateway: Math.round(peak.gateway), runner: Math.round(peak.runner) },
    };
  };
  const p3a = await burst(64, 300_000);
  const p3b = await burst(140, 400_000);
  out.p3 = { at_limit: p3a, beyond_limit: p3b };

  // P4: footprint.
  const before1000 = { gateway: rssMb(gatewayPid), runner: rssMb(runnerPid) };
  await Promise.all(Array.from({ length: 1000 }, (_, i) => submit(stack, code, 500_000 + i)));
  await new Promise((r) => setTimeout(r, 1000));
  const after1000 = { gateway: rssMb(gatewayPid), runner: rssMb(runnerPid) };
  out.p4 = {
    idle_mb: { gateway: Math.round(idle.gateway), runner: Math.round(idle.runner), both: Math.round(idle.gateway + idle.runner) },
    after_load_mb: { gateway: Math.round(afterP2.gateway), runner: Math.round(afterP2.runner), stored_requests: storedAfterP2 },
    plus_1000_requests_mb: Math.round((after1000.gateway + after1000.runner - before1000.gateway - before1000.runner) * 10) / 10,
    during_p3_peak_mb: p3a.peak_rss_mb,
  };
  await stack.stop();

  // P5: RunSkill round trip over the real Unix socket, Deno replaced by a no-op executor.
  const noop: SkillExecutor = {
    isolation: "bench-noop",
    async run(): Promise<ExecutionResult> {
      return {
        termination: "exited",
        exitCode: 0,
        signal: "",
        stdout: "",
        stderr: "",
        stdoutTruncated: false,
        stderrTruncated: false,
        redacted: false,
        durationMs: 0,
        denoArgs: [],
        envNames: [],
      };
    },
  };
  const ledger = RunLedger.open(join(work, "p5-ledger"));
  const socketPath = join(work, "p5", "runner.sock");
  const server = await startRunnerServer({
    socketPath,
    maxTimeoutSeconds: 60,
    routes: (router) =>
      registerRunnerService(router, {
        secrets: new SecretStore(new Map(), new Map()),
        ledger,
        executor: noop,
        queue: new RunQueue(4, 64),
        logger: pino({ level: "silent" }),
        denoVersion: "bench",
        runnerVersion: "bench",
        maxTimeoutSeconds: 60,
        outputLimitBytes: 1024,
        signer: SigningKey.ephemeral(),
      }),
  });
  const client = createRunnerClient(socketPath);
  const p5Code = Buffer.from("console.log(1)");
  const rtt: number[] = [];
  const health: number[] = [];
  for (let i = 0; i < 600; i++) {
    const id = `exec_${i.toString(16).padStart(16, "0")}`;
    let t = performance.now();
    await client.runSkill({ requestId: id, code: p5Code, codeSha256: sha256Hex(p5Code), timeoutSeconds: 5 });
    if (i >= 100) rtt.push(performance.now() - t);
    t = performance.now();
    await client.getHealth({});
    if (i >= 100) health.push(performance.now() - t);
  }
  await server.close();
  await ledger.close();
  out.p5 = {
    run_skill_ms: { p50: ms(quantile(rtt, 0.5) * 100) / 100, p99: ms(quantile(rtt, 0.99) * 100) / 100 },
    get_health_ms: { p50: ms(quantile(health, 0.5) * 100) / 100, p99: ms(quantile(health, 0.99) * 100) / 100 },
  };

  mkdirSync(join(ROOT, "bench/out"), { recursive: true });
  writeFileSync(join(ROOT, "bench/out/results.json"), JSON.stringify(out, null, 2));
  console.log(JSON.stringify(out, null, 2));
  rmSync(work, { recursive: true, force: true });
}

main().then(
  () => process.exit(0),
  (err) => {
    console.error(err);
    process.exit(1);
  },
);
