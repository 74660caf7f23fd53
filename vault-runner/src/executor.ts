import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { lstatSync, readdirSync, readFileSync, type Dirent } from "node:fs";
import { chmod, chown, lchown, lstat, readdir, mkdir, readFile, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { sha256Hex, type RunSpec } from "@oauth3/shared";
import type { Binding } from "./bindings.js";
import { buildInvocation } from "./deno-invocation.js";
import { type HeldSecret, newPlaceholder, type Violation } from "./placeholders.js";
import { createRedactor } from "./redact.js";
import type { UidPool } from "./uid-pool.js";
import type { EgressProxy } from "./egress-proxy.js";

export type Termination = "exited" | "timeout" | "output_limit" | "memory" | "disk" | "signaled" | "spawn_failed" | "cancelled";

export interface SkillJob {
  requestId: string;
  code: Uint8Array;
  codeSha256: string;
  spec: RunSpec;
  secrets: ReadonlyMap<string, string>;
  /** Each granted secret's binding (the runner's own): "placeholder" ones never enter the skill. */
  bindings: ReadonlyMap<string, Binding>;
  /** Aborted when the caller gave up (deadline, or the gateway went away): the skill is killed. */
  signal?: AbortSignal;
}

export interface ExecutionResult {
  termination: Termination;
  exitCode: number;
  signal: string;
  /** Redacted and capped. */
  stdout: string;
  stderr: string;
  stdoutTruncated: boolean;
  stderrTruncated: boolean;
  redacted: boolean;
  durationMs: number;
  denoArgs: string[];
  envNames: string[];
  /** The uid the skill ran as; absent: the runner's own (shared-uid). */
  uid?: number;
  /** Placeholders the skill sent where their binding does not allow (each refused by the proxy). */
  violations?: Violation[];
  /** Secrets whose value the proxy put into a request. */
  secretsUsed?: string[];
}

/** The seam between the RPC service and whatever runs code. Production: `DenoExecutor`. */
export interface SkillExecutor {
  readonly isolation: string;
  readonly egress?: string;
  /** Whether this executor can give a skill placeholders (an egress proxy that intercepts). */
  readonly placeholders?: boolean;
  run(job: SkillJob): Promise<ExecutionResult>;
}

export interface DenoExecutorOptions {
  denoPath: string;
  workDir: string;
  outputLimitBytes: number;
  v8MaxOldSpaceMb: number;
  /** Resident memory cap, enforced by a watchdog (the V8 flag does not cover ArrayBuffers). */
  memoryLimitMb: number;
  /**
   * Disk cap for the run's own tree (its DENO_DIR: Cache API and localStorage write there without a
   * write permission check), enforced by the same 100 ms watchdog as memory (RUNNER_DISK_LIMIT_MB).
   */
  diskLimitMb: number;
  /** Per-run uids. Without a pool every skill runs under the runner's own uid ("shared-uid"). */
  uidPool?: UidPool | undefined;
  /** The egress proxy (with firewall rules for the skill uids); absent: Deno's flags alone. */
  egress?: EgressProxy | undefined;
  /**
   * Deno-only mode: an intercepting proxy only runs that hold placeholders go through (no firewall
   * makes anything else use it; Deno's flags stay the address check for the rest).
   */
  placeholderProxy?: EgressProxy | undefined;
  /** A CA bundle readable by skill uids, given to Deno as DENO_CERT. */
  caFile?: string | undefined;
  /** The bundle for runs that hold placeholders: the runner's egress CA (and the operator's extra CA). */
  placeholderCaFile?: string | undefined;
  /**
   * argv prefix that makes the kernel kill Deno when the runner dies (`setpriv --pdeathsig KILL --`,
   * orphan-guard.ts). It execs Deno in place: same pid, same group.
   */
  deathSignalWrapper?: string[] | undefined;
}

export class DenoExecutor implements SkillExecutor {
  readonly isolation: string;
  readonly egress: string;
  readonly placeholders: boolean;

  constructor(private readonly options: DenoExecutorOptions) {
    this.isolation = options.uidPool ? "per-run-uid" : "shared-uid";
    this.egress = options.egress ? "proxy+firewall" : "deno-only";
    this.placeholders = (options.egress ?? options.placeholderProxy)?.intercepts ?? false;
  }

  private readonly cleanups = new Set<Promise<void>>();
  /** Process groups of the skills running now (each Deno leads its own group). */
  private readonly groups = new Set<number>();

  /**
   * Kills every running skill's process group at once, synchronously: called before the runner
   * exits for any reason it can see (a crash included), so no skill outlives it even without the
   * kernel's death signal.
   */
  killAll(): number {
    for (const pgid of this.groups) {
      try {
        process.kill(-pgid, "SIGKILL");
      } catch {
        // already gone
      }
    }
    return this.groups.size;
  }

  async run(job: SkillJob): Promise<ExecutionResult> {
    const runDir = join(this.options.workDir, `${job.requestId}-${randomBytes(6).toString("hex")}`);
    // What the skill's environment holds for each secret: a fresh placeholder, or (env mode) the value.
    const held: HeldSecret[] = [];
    const envSecrets = new Map<string, string>();
    for (const [name, value] of job.secrets) {
      const binding = job.bindings.get(name);
      if (binding?.mode === "env") envSecrets.set(name, value);
      else if (binding?.mode === "placeholder") {
        const placeholder = newPlaceholder();
        held.push({ name, value, placeholder, binding });
        envSecrets.set(name, placeholder);
      } else throw new Error(`secret ${name} has no binding`);
    }
    if (held.length > 0 && !this.placeholders) throw new Error("placeholder secrets need an intercepting egress proxy");
    const uid = this.options.uidPool?.acquire();
    const viaPlaceholderProxy = !this.options.egress && held.length > 0;
    const proxy = viaPlaceholderProxy ? this.options.placeholderProxy : this.options.egress;
    const lease = proxy?.lease(job.requestId, job.spec.network, held);
    const cleanup = async () => {
      lease?.release();
      try {
        // What the skill's uid created is taken back first: a runner with CAP_CHOWN but without
        // CAP_DAC_OVERRIDE (the container) could not empty a directory the skill owns.
        if (uid !== undefined) await reclaim(join(runDir, "deno-dir"));
        await rm(runDir, { recursive: true, force: true });
      } finally {
        // The uid is freed last: it stays busy until its stragglers are killed and what it wrote is
        // gone, so the next run under it can neither meet its processes nor its files.
        if (uid !== undefined) this.options.uidPool!.release(uid);
      }
    };
    let result: ExecutionResult;
    try {
      const paths = await this.prepare(runDir, job, uid);
      const invocation = buildInvocation(job.spec, envSecrets, paths, {
        ...this.options,
        proxyUrl: lease?.proxyUrl,
        proxyAddressInDenyNet: viaPlaceholderProxy ? proxy!.address : undefined,
        caFile: held.length > 0 ? this.options.placeholderCaFile : this.options.caFile,
      });
      const raw = await this.spawnAndWait(invocation.args, invocation.env, paths.homeDir, job, uid, paths.denoDir);
      const redactor = createRedactor(job.secrets);
      const out = redactor.redact(raw.stdout, raw.stdoutTruncated);
      const err = redactor.redact(raw.stderr, raw.stderrTruncated);
      result = {
        ...raw,
        stdout: out.text,
        stderr: err.text,
        redacted: out.redacted || err.redacted,
        denoArgs: invocation.args,
        // The proxy URL carries the run's credentials: name the variables, never show the value.
        envNames: Object.keys(invocation.env).sort(),
        ...(uid !== undefined && { uid }),
        ...(lease && { violations: [...lease.violations], secretsUsed: [...lease.used].sort() }),
      };
    } catch (e) {
      await cleanup();
      throw e;
    }
    // The skill has exited and its group is killed: the answer need not wait for the clean-up.
    const pending = cleanup().catch(() => undefined);
    this.cleanups.add(pending);
    void pending.finally(() => this.cleanups.delete(pending));
    return result;
  }

  /** Resolves when every run's clean-up (uid release, directory removal) has finished. */
  async idle(): Promise<void> {
    await Promise.all([...this.cleanups]);
  }

  /** A fresh directory per run: the approved bytes (re-hashed after writing; readable, not
   *  writable, by the skill), an empty cwd/HOME the skill cannot write, and a private DENO_DIR owned
   *  by the run's uid (0700) and deleted afterwards, so localStorage/caches never outlive the run
   *  or reach another uid. (A read-only DENO_DIR would cost ~150 ms per run: docs/benchmarks.md.) */
  private async prepare(runDir: string, job: SkillJob, uid: number | undefined) {
    await mkdir(this.options.workDir, { recursive: true, mode: 0o711 });
    await mkdir(runDir, { mode: 0o755 });
    await chmod(runDir, 0o755);
    const skillFile = join(runDir, "skill.ts");
    const homeDir = join(runDir, "home");
    const denoDir = join(runDir, "deno-dir");
    await writeFile(skillFile, job.code, { flag: "wx", mode: 0o644 });
    await mkdir(homeDir, { mode: 0o755 });
    await mkdir(denoDir, { mode: 0o700 });
    if (uid !== undefined) await chown(denoDir, uid, uid);
    const written = sha256Hex(await readFile(skillFile));
    if (written !== job.codeSha256) throw new Error("skill file hash changed after writing");
    return { skillFile, homeDir, denoDir };
  }

  private spawnAndWait(
    args: string[],
    env: Record<string, string>,
    cwd: string,
    job: SkillJob,
    uid: number | undefined,
    writable: string,
  ): Promise<Omit<ExecutionResult, "redacted" | "denoArgs" | "envNames">> {
    const limit = this.options.outputLimitBytes;
    const started = performance.now();
    return new Promise((resolve) => {
      const wrapper = this.options.deathSignalWrapper ?? [];
      const [file, ...argv] = [...wrapper, this.options.denoPath, ...args];
      const child = spawn(file!, argv, {
        cwd,
        env,
        detached: true, // own process group, so the whole group can be killed at once
        ...(uid !== undefined && { uid, gid: uid }),
        stdio: ["ignore", "pipe", "pipe"],
      });
      if (child.pid !== undefined) this.groups.add(child.pid);
      let killedFor: Termination | undefined;
      const killGroup = (reason: Termination) => {
        killedFor ??= reason;
        if (child.pid === undefined) return;
        try {
          process.kill(-child.pid, "SIGKILL");
        } catch {
          // already gone
        }
      };
      const stdout = new CappedBuffer(limit, () => killGroup("output_limit"));
      const stderr = new CappedBuffer(limit, () => killGroup("output_limit"));
      child.stdout.on("data", (c: Buffer) => stdout.push(c));
      child.stderr.on("data", (c: Buffer) => stderr.push(c));
      const timer = setTimeout(() => killGroup("timeout"), job.spec.timeoutSeconds * 1000);
      const limitKb = this.options.memoryLimitMb * 1024;
      const diskBytes = this.options.diskLimitMb * 1024 * 1024;
      const watchdog = setInterval(() => {
        if (child.pid !== undefined && residentKb(child.pid) > limitKb) killGroup("memory");
        if (overDiskBudget(writable, diskBytes)) killGroup("disk");
      }, 100);
      const onAbort = () => killGroup("cancelled");
      if (job.signal?.aborted) onAbort();
      job.signal?.addEventListener("abort", onAbort);

      let spawnError: Error | undefined;
      child.on("error", (err) => {
        spawnError = err;
      });
      child.on("close", (code, signal) => {
        clearTimeout(timer);
        clearInterval(watchdog);
        job.signal?.removeEventListener("abort", onAbort);
        // Reap anything the skill left in its group (Workers are threads, but be thorough).
        if (child.pid !== undefined) {
          try {
            process.kill(-child.pid, "SIGKILL");
          } catch {
            // group is empty
          }
          this.groups.delete(child.pid);
        }
        const termination: Termination = spawnError ? "spawn_failed" : (killedFor ?? (signal ? "signaled" : "exited"));
        resolve({
          termination,
          exitCode: termination === "exited" && code !== null ? code : -1,
          signal: signal ?? "",
          stdout: stdout.text(),
          stderr: spawnError ? `could not start Deno: ${spawnError.message}` : stderr.text(),
          stdoutTruncated: stdout.truncated,
          stderrTruncated: stderr.truncated,
          durationMs: Math.round(performance.now() - started),
        });
      });
    });
  }
}

/** Entries (files, directories) a run's tree may hold: inodes are a resource too. */
export const MAX_DISK_ENTRIES = 4096;

/**
 * True when the tree under `dir` holds more than `limitBytes` (allocated blocks, so a sparse file
 * counts what it uses) or more than MAX_DISK_ENTRIES entries. The walk stops as soon as either is
 * exceeded, so its cost is bounded whatever the skill creates.
 */
export function overDiskBudget(dir: string, limitBytes: number): boolean {
  let bytes = 0;
  let entries = 0;
  const stack = [dir];
  while (stack.length > 0) {
    const current = stack.pop()!;
    let names: Dirent[];
    try {
      names = readdirSync(current, { withFileTypes: true });
    } catch {
      continue; // gone, or not a directory
    }
    for (const entry of names) {
      if (++entries > MAX_DISK_ENTRIES) return true;
      const path = join(current, entry.name);
      try {
        const st = lstatSync(path);
        bytes += st.blocks * 512;
        if (bytes > limitBytes) return true;
        if (st.isDirectory()) stack.push(path);
      } catch {
        // removed while we looked
      }
    }
  }
  return false;
}

/** Hands a tree back to the runner, top-down (each directory is ours before we list it). */
async function reclaim(path: string): Promise<void> {
  const uid = process.getuid!();
  const gid = process.getgid!();
  try {
    await lchown(path, uid, gid);
    const entry = await lstat(path);
    if (entry.isDirectory()) {
      for (const name of await readdir(path)) await reclaim(join(path, name));
    }
  } catch {
    // gone already; rm() reports anything that really remains
  }
}

/** VmRSS of a process in kB (0 once it is gone). Deno cannot start subprocesses (--deny-run) and
 *  Workers are threads, so the Deno process's RSS is the skill's whole footprint. */
function residentKb(pid: number): number {
  try {
    const match = /^VmRSS:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
    return match ? Number(match[1]) : 0;
  } catch {
    return 0;
  }
}

/** Keeps at most `limit` bytes; calls `onOverflow` once when more arrive. */
class CappedBuffer {
  private readonly chunks: Buffer[] = [];
  private size = 0;
  truncated = false;

  constructor(
    private readonly limit: number,
    private readonly onOverflow: () => void,
  ) {}

  push(chunk: Buffer): void {
    if (this.truncated) return;
    const room = this.limit - this.size;
    if (chunk.length > room) {
      this.chunks.push(chunk.subarray(0, room));
      this.size = this.limit;
      this.truncated = true;
      this.onOverflow();
      return;
    }
    this.chunks.push(chunk);
    this.size += chunk.length;
  }

  text(): string {
    return new TextDecoder("utf-8", { fatal: false }).decode(Buffer.concat(this.chunks));
  }
}
