import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { randomInt } from "node:crypto";
import { once } from "node:events";
import { readFileSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

export const ROOT = fileURLToPath(new URL("../..", import.meta.url));

/**
 * A port for a server a test starts later. Chosen below the kernel's ephemeral range
 * (ip_local_port_range, 32768-60999 by default), so that no outgoing connection of any process can
 * take it between this check and the server's listen (a port from listen(0) can be handed to the
 * next connect() of a parallel test file: EADDRINUSE). Random within the range, and checked free.
 */
export async function freePort(): Promise<number> {
  let low = 32768;
  try {
    low = Number(readFileSync("/proc/sys/net/ipv4/ip_local_port_range", "utf8").trim().split(/\s+/)[0]) || low;
  } catch {
    // not Linux: the default range
  }
  const from = 10_000;
  const to = Math.max(from + 1000, Math.min(low, 32768));
  for (let attempt = 0; attempt < 50; attempt++) {
    const port = from + randomInt(to - from);
    const server = createServer();
    const ok = await new Promise<boolean>((resolve) => {
      server.once("error", () => resolve(false));
      server.listen(port, "127.0.0.1", () => resolve(true));
    });
    if (ok) {
      await new Promise((r) => server.close(r));
      return port;
    }
  }
  throw new Error("no free port below the ephemeral range");
}

export interface StackOptions {
  dir: string;
  port: number;
  env?: Record<string, string>;
}

/**
 * The whole product as a user runs it: `scripts/start.ts` (what `npm start` runs) launching the real
 * vault-runner and gateway processes, with everything under `dir`. Output goes to `dir/stack.log`.
 */
export class Stack {
  private child?: ChildProcess;
  readonly logPath: string;
  readonly baseUrl: string;

  constructor(readonly options: StackOptions) {
    this.logPath = join(options.dir, "stack.log");
    this.baseUrl = `http://127.0.0.1:${options.port}`;
  }

  get runnerSocket(): string {
    return join(this.options.dir, "run", "runner.sock");
  }

  get operatorSocket(): string {
    return join(this.options.dir, "operator", "operator.sock");
  }

  get env(): Record<string, string> {
    const d = this.options.dir;
    return {
      PATH: process.env.PATH ?? "/usr/bin:/bin",
      PORT: String(this.options.port),
      DB_PATH: join(d, "gateway-db"),
      RUNNER_SOCKET: this.runnerSocket,
      OPERATOR_SOCKET: this.operatorSocket,
      RUNNER_STATE_DIR: join(d, "runner-state"),
      // Never the default 61000: the container test's runner uses it, and container processes are
      // visible in the host's /proc, so a host runner's uid pool would reap their skills. Each test
      // file that runs skills sets a base of its own.
      RUNNER_SKILL_UID_BASE: "67100",
      LOG_LEVEL: "debug",
      ...this.options.env,
    };
  }

  async start(): Promise<void> {
    writeFileSync(this.logPath, "", { flag: "a" });
    const { openSync } = await import("node:fs");
    const fd = openSync(this.logPath, "a");
    this.child = spawn(process.execPath, ["--import", import.meta.resolve("tsx"), join(ROOT, "scripts/start.ts")], {
      cwd: this.options.dir,
      env: this.env,
      stdio: ["ignore", fd, fd],
    });
    const deadline = Date.now() + 30_000;
    for (;;) {
      if (this.child.exitCode !== null) throw new Error(`stack exited early:\n${this.log()}`);
      try {
        const res = await fetch(`${this.baseUrl}/health`);
        if (res.status === 200) return;
      } catch {
        // not up yet
      }
      if (Date.now() > deadline) throw new Error(`stack did not become healthy:\n${this.log()}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  }

  async stop(signal: NodeJS.Signals = "SIGTERM"): Promise<number | null> {
    const child = this.child;
    if (!child || child.exitCode !== null) return child?.exitCode ?? null;
    child.kill(signal);
    const [code] = (await once(child, "exit")) as [number | null];
    return code;
  }

  /** The launcher's exit, whenever it comes (e.g. after one of its children was killed). */
  async exited(ms = 30_000): Promise<number | null> {
    const child = this.child!;
    if (child.exitCode !== null) return child.exitCode;
    const timer = setTimeout(() => child.kill("SIGKILL"), ms);
    const [code] = (await once(child, "exit")) as [number | null];
    clearTimeout(timer);
    return code;
  }

  /** Pids of the launcher's runner and gateway processes [runner, gateway], from /proc. */
  childPids(): [number, number] {
    const pid = this.child!.pid!;
    const kids = readFileSync(`/proc/${pid}/task/${pid}/children`, "utf8").trim().split(/\s+/).map(Number);
    const find = (name: string) => {
      const found = kids.find((k) => readFileSync(`/proc/${k}/cmdline`, "utf8").includes(`dist/${name}.mjs`));
      if (found === undefined) throw new Error(`no ${name} process under the launcher`);
      return found;
    };
    return [find("vault-runner"), find("gateway")];
  }

  log(): string {
    return readFileSync(this.logPath, "utf8");
  }

  async post(body: unknown): Promise<{ status: number; json: Record<string, unknown> }> {
    const res = await fetch(`${this.baseUrl}/execute`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify(body),
    });
    return { status: res.status, json: (await res.json()) as Record<string, unknown> };
  }

  async status(id: string): Promise<Record<string, unknown>> {
    return (await (await fetch(`${this.baseUrl}/execute/${id}/status`)).json()) as Record<string, unknown>;
  }

  /** The operator CLI as a separate process, exactly as `npm run oauth3 -- ...` runs it. */
  cli(...args: string[]): { code: number; out: string } {
    const r = spawnSync(process.execPath, [join(ROOT, "cli/bin/oauth3.js"), ...args], {
      env: { PATH: process.env.PATH, OPERATOR_SOCKET: this.operatorSocket },
      encoding: "utf8",
      timeout: 30_000,
    });
    return { code: r.status ?? -1, out: `${r.stdout}${r.stderr}` };
  }

  /**
   * The CLI without blocking this process's event loop (needed when a fake the stack talks to, such
   * as the dstack guest agent, is served from the test process itself).
   */
  async cliAsync(...args: string[]): Promise<{ code: number; out: string }> {
    return this.cliWith({}, ...args);
  }

  /** cliAsync with extra environment (e.g. OAUTH3_AUDIT_TOKEN for remote audit). */
  async cliWith(env: Record<string, string>, ...args: string[]): Promise<{ code: number; out: string }> {
    const child = spawn(process.execPath, [join(ROOT, "cli/bin/oauth3.js"), ...args], {
      env: { PATH: process.env.PATH, OPERATOR_SOCKET: this.operatorSocket, ...env },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let out = "";
    child.stdout.on("data", (c: Buffer) => (out += c.toString("utf8")));
    child.stderr.on("data", (c: Buffer) => (out += c.toString("utf8")));
    const [code] = (await once(child, "close")) as [number | null];
    return { code: code ?? -1, out };
  }

  async waitFinal(id: string, ms = 30_000): Promise<Record<string, unknown>> {
    const deadline = Date.now() + ms;
    for (;;) {
      const s = await this.status(id);
      if (!["pending", "approved", "executing"].includes(String(s.status))) return s;
      if (Date.now() > deadline) throw new Error(`request ${id} still ${s.status}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }
}
