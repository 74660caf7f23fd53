import { createHash, randomBytes } from "node:crypto";
import { chmodSync } from "node:fs";
import { join } from "node:path";
import { chooseIsolation } from "../../vault-runner/src/isolation.ts";
import { after } from "node:test";
import { pino } from "pino";
import type { ConnectRouter } from "@connectrpc/connect";
import { resolveDenoBinary, denoVersion } from "../../vault-runner/src/deno-binary.ts";
import { DenoExecutor, type ExecutionResult, type SkillExecutor, type SkillJob } from "../../vault-runner/src/executor.ts";
import { RunLedger } from "../../vault-runner/src/ledger.ts";
import { pdeathsigWrapper } from "../../vault-runner/src/orphan-guard.ts";
import { RunQueue } from "../../vault-runner/src/run-queue.ts";
import { SecretStore } from "../../vault-runner/src/secrets.ts";
import type { Binding } from "../../vault-runner/src/bindings.ts";
import { SigningKey } from "@oauth3/shared/signing-key";
import { bindingsDigest } from "@oauth3/shared";
import { registerRunnerService, type RunnerServiceDeps } from "../../vault-runner/src/service.ts";
import { tempDir } from "./tmp.ts";

export const TEST_SECRETS = {
  FOO: "foo-secret-3f9a1c7e55",
  BAR: "bar-secret-8d2b6e0a44",
} as const;

/** The digest of `names` bound "env" (as an approval of runnerDeps' secrets states it). */
export function envBindingsDigest(names: readonly string[]): string {
  return bindingsDigest(names.map((name) => ({ name, mode: "env", hosts: [], places: [] })));
}

/** Every name in "env" mode: the skill sees the raw value (what these tests of redaction and refusal need). */
export function envBindings(names: readonly string[]): Map<string, Binding> {
  return new Map(names.map((name) => [name, { name, mode: "env" as const }]));
}

/** Records jobs instead of running them: proves which requests reached execution. */
export class RecordingExecutor implements SkillExecutor {
  readonly isolation = "recording";
  readonly jobs: SkillJob[] = [];
  constructor(private readonly delayMs = 0) {}
  async run(job: SkillJob): Promise<ExecutionResult> {
    this.jobs.push(job);
    if (this.delayMs) await new Promise((r) => setTimeout(r, this.delayMs));
    return {
      termination: "exited",
      exitCode: 0,
      signal: "",
      stdout: "ok\n",
      stderr: "",
      stdoutTruncated: false,
      stderrTruncated: false,
      redacted: false,
      durationMs: 1,
      denoArgs: [],
      envNames: [],
    };
  }
}

export const IS_ROOT = process.getuid?.() === 0;

/**
 * The production executor with the production isolation choice ("auto": per-run uids when root, as
 * in CI). Each test file passes its own uid base so files running in parallel never share uids.
 */
export function realDenoExecutor(
  dir: string,
  uidBase: number,
  outputLimitBytes = 64 * 1024,
  memoryLimitMb = 512,
  diskLimitMb = 64,
): DenoExecutor {
  chmodSync(dir, 0o711);
  const denoPath = resolveDenoBinary();
  const isolation = chooseIsolation({
    requested: "auto",
    denoPath,
    uidBase,
    poolSize: 8,
    workDir: join(dir, "work"),
  });
  return new DenoExecutor({
    denoPath,
    workDir: isolation.workDir,
    uidPool: isolation.uidPool,
    outputLimitBytes,
    v8MaxOldSpaceMb: 128,
    memoryLimitMb,
    diskLimitMb,
    deathSignalWrapper: pdeathsigWrapper(),
  });
}

export function runnerDeps(executor: SkillExecutor, overrides: Partial<RunnerServiceDeps> = {}): RunnerServiceDeps {
  const dir = tempDir("oauth3-runner-");
  const ledger = RunLedger.open(join(dir, "ledger"));
  after(() => ledger.close());
  return {
    secrets: new SecretStore(new Map(Object.entries(TEST_SECRETS)), envBindings(Object.keys(TEST_SECRETS))),
    ledger,
    executor,
    queue: new RunQueue(4, 8),
    logger: pino({ level: "silent" }),
    denoVersion: denoVersion(resolveDenoBinary()),
    runnerVersion: "test",
    maxTimeoutSeconds: 60,
    outputLimitBytes: 64 * 1024,
    signer: SigningKey.ephemeral(),
    ...overrides,
  };
}

export function routesFor(deps: RunnerServiceDeps) {
  return (router: ConnectRouter) => registerRunnerService(router, deps);
}

export function newRequestId(): string {
  return `exec_${randomBytes(8).toString("hex")}`;
}

/**
 * A RunSkill request; its approval states the bindings of its secrets as runnerDeps holds them
 * (all "env"), unless `fields` brings its own approval.
 */
export function skillRequest(source: string, fields: Record<string, unknown> = {}) {
  const code = Buffer.from(source);
  const names = (fields.secretNames as string[] | undefined) ?? [];
  return {
    approval: { decidedBy: "test:1", channel: "test", decidedAtMs: 0n, bindingsSha256: envBindingsDigest(names) },
    requestId: newRequestId(),
    code,
    codeSha256: createHash("sha256").update(code).digest("hex"),
    secretNames: [] as string[],
    network: [] as string[],
    args: [] as Array<{ name: string; value: string }>,
    timeoutSeconds: 10,
    ...fields,
  };
}
