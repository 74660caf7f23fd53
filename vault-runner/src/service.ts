import { Code, ConnectError, type ConnectRouter } from "@connectrpc/connect";
import { create } from "@bufbuild/protobuf";
import {
  GetHealthResponseSchema,
  ListSecretNamesResponseSchema,
  PlacementViolationSchema,
  RunPolicySchema,
  SecretBindingSchema,
  RunReceiptSchema,
  RunSkillResponseSchema,
  Termination,
  VaultRunnerService,
  type RunSkillRequest,
} from "@oauth3/proto/runner/v1";
import {
  LIMITS,
  outputDigest,
  parseSkillHeader,
  PolicyError,
  REQUEST_ID_PATTERN,
  type ReceiptPayload,
  resolveRunSpec,
  sha256Hex,
  SHA256_HEX_PATTERN,
  type RunSpec,
} from "@oauth3/shared";
import type { Logger } from "pino";
import type { SigningKey } from "@oauth3/shared/signing-key";
import type { ProcessFacts } from "@oauth3/shared/process-report";
import { createAttester } from "./attest.js";
import { bindingSummary, runBindingsDigest } from "./bindings.js";
import type { DstackAgent } from "./dstack.js";
import type { ExecutionResult, SkillExecutor } from "./executor.js";
import type { RunLedger } from "./ledger.js";
import type { RunQueue } from "./run-queue.js";
import type { SecretStore } from "./secrets.js";

export interface RunnerServiceDeps {
  secrets: SecretStore;
  ledger: RunLedger;
  executor: SkillExecutor;
  queue: RunQueue;
  logger: Logger;
  denoVersion: string;
  runnerVersion: string;
  maxTimeoutSeconds: number;
  outputLimitBytes: number;
  memoryLimitMb?: number;
  diskLimitMb?: number;
  /** Signs a receipt for every run. */
  signer: SigningKey;
  /** Operator-allowed private host:port pairs, reported with every run. */
  egressPrivateAllowed?: string[];
  /** The dstack guest agent, when the runner runs in a dstack CVM. */
  dstack?: DstackAgent | undefined;
  /** The Deno flags every run gets, for the attested policy and the self-audit. */
  denoFlags?: string[];
  /** Facts about this process for the split self-audit (main reads /proc). */
  processReport?: () => ProcessFacts & { perRunUidsActive: number; egressProxy: string };
}

const TERMINATION: Record<ExecutionResult["termination"], Termination> = {
  exited: Termination.EXITED,
  timeout: Termination.TIMEOUT,
  output_limit: Termination.OUTPUT_LIMIT,
  memory: Termination.MEMORY,
  disk: Termination.DISK,
  signaled: Termination.SIGNALED,
  spawn_failed: Termination.SPAWN_FAILED,
  // Nobody receives this answer (the caller is gone); the ledger records "cancelled".
  cancelled: Termination.SIGNALED,
};

/** The runner's effective policy as the attestation binds it (its own view, nothing from the gateway). */
export function runnerPolicy(deps: RunnerServiceDeps): Record<string, unknown> {
  return {
    runnerVersion: deps.runnerVersion,
    denoVersion: deps.denoVersion,
    denoFlags: deps.denoFlags ?? [],
    isolation: deps.executor.isolation,
    egress: deps.executor.egress ?? "none",
    egressPrivateAllowed: deps.egressPrivateAllowed ?? [],
    maxTimeoutSeconds: deps.maxTimeoutSeconds,
    outputLimitBytes: deps.outputLimitBytes,
    memoryLimitMb: deps.memoryLimitMb ?? null,
    maxConcurrentRuns: deps.queue.concurrency,
    secretCount: deps.secrets.size,
    receiptKeySource: deps.signer.source,
  };
}

export function registerRunnerService(router: ConnectRouter, deps: RunnerServiceDeps): void {
  const attest = createAttester({ signer: deps.signer, dstack: deps.dstack, runnerPolicy: () => runnerPolicy(deps) });
  router.service(VaultRunnerService, {
    attest,

    async runSkill(req, ctx) {
      const started = Date.now();
      const { spec, codeSha256 } = checkRunRequest(req, deps);
      // The runner's own bindings, fixed for this run (the gateway never sends one).
      const bindings = new Map(spec.secretNames.map((n) => [n, deps.secrets.binding(n)!]));
      const secretUses = spec.secretNames.map((n) => bindingSummary(bindings.get(n)!));
      // Queued fairly per agent (round-robin): the agent only decides a place in line, nothing else.
      const acquire = deps.queue.admit(req.agent);
      if (!acquire) {
        throw refuse(deps, req, Code.ResourceExhausted, "run queue is full, try again later");
      }
      // Claim durably before anything runs: at most once, across restarts.
      let release: (() => void) | undefined;
      try {
        const claimed = await deps.ledger.claim({
          requestId: req.requestId,
          codeSha256,
          secretNames: spec.secretNames,
          network: spec.network,
          decidedBy: req.approval?.decidedBy.slice(0, 128) ?? "",
          acceptedAt: started,
        });
        if (!claimed) {
          throw refuse(deps, req, Code.AlreadyExists, `request ${req.requestId} was already run`);
        }
        release = await acquire;
      } finally {
        if (!release) void acquire.then((r) => r());
      }
      const log = deps.logger.child({ requestId: req.requestId, codeSha256 });
      if (ctx.signal.aborted) {
        // The caller gave up while this run waited in the queue: never start it.
        release();
        await deps.ledger.finish(req.requestId, { termination: "cancelled", exitCode: -1 });
        throw new ConnectError("cancelled before it started", Code.Canceled);
      }
      try {
        log.info({ secrets: spec.secretNames, network: spec.network }, "run started");
        const result = await deps.executor.run({
          requestId: req.requestId,
          code: req.code,
          codeSha256,
          spec,
          secrets: deps.secrets.valuesFor(spec.secretNames),
          bindings,
          signal: ctx.signal,
        });
        const violations = result.violations ?? [];
        const payload: ReceiptPayload = {
          v: 4,
          requestId: req.requestId,
          codeSha256,
          secretNames: spec.secretNames,
          network: spec.network,
          timeoutSeconds: spec.timeoutSeconds,
          termination: result.termination,
          exitCode: result.exitCode,
          durationMs: result.durationMs,
          outputSha256: outputDigest(result.stdout, result.stderr),
          acceptedAt: started,
          finishedAt: Date.now(),
          uid: result.uid ?? null,
          // What the gateway said about the decision, fixed at run time: a later rewrite of the
          // chain's decision entry no longer matches this signed copy.
          approval: {
            decidedBy: req.approval?.decidedBy ?? "",
            channel: req.approval?.channel ?? "",
            decidedAtMs: Number(req.approval?.decidedAtMs ?? 0n),
          },
          bindings: secretUses,
          bindingsSha256: runBindingsDigest(deps.secrets.bindings, spec.secretNames),
          violations,
          secretsUsed: result.secretsUsed ?? [],
        };
        const receipt = deps.signer.sign(payload);
        // The runner's own log keeps the signed receipt: its record of what it ran, as whom.
        await deps.ledger.finish(req.requestId, {
          termination: result.termination,
          exitCode: result.exitCode,
          uid: payload.uid ?? null,
          receipt: {
            payloadJson: receipt.payloadJson,
            signature: receipt.signature.toString("base64"),
            publicKey: deps.signer.publicKeyHex,
          },
        });
        log.info(
          { termination: result.termination, exitCode: result.exitCode, durationMs: result.durationMs, uid: payload.uid ?? null },
          "run finished",
        );
        return create(RunSkillResponseSchema, {
          termination: TERMINATION[result.termination],
          exitCode: result.exitCode,
          signal: result.signal,
          stdout: result.stdout,
          stderr: result.stderr,
          stdoutTruncated: result.stdoutTruncated,
          stderrTruncated: result.stderrTruncated,
          redacted: result.redacted,
          durationMs: result.durationMs,
          policy: create(RunPolicySchema, {
            denoArgs: result.denoArgs,
            envNames: result.envNames,
            allowedHosts: spec.network,
            timeoutSeconds: spec.timeoutSeconds,
            denoVersion: deps.denoVersion,
            isolation: deps.executor.isolation,
            stdoutLimitBytes: BigInt(deps.outputLimitBytes),
            stderrLimitBytes: BigInt(deps.outputLimitBytes),
            egress: deps.executor.egress ?? "none",
            egressPrivateAllowed: deps.egressPrivateAllowed ?? [],
            memoryLimitBytes: BigInt((deps.memoryLimitMb ?? 0) * 1024 * 1024),
            diskLimitBytes: BigInt((deps.diskLimitMb ?? 0) * 1024 * 1024),
            secrets: secretUses.map((b) => create(SecretBindingSchema, b)),
            violations: violations.map((v) => create(PlacementViolationSchema, v)),
            secretsUsed: result.secretsUsed ?? [],
          }),
          receipt: create(RunReceiptSchema, {
            payloadJson: receipt.payloadJson,
            signature: receipt.signature,
            publicKey: deps.signer.publicKeyHex,
          }),
        });
      } catch (err) {
        // The id stays claimed: a run that may have started is never started again.
        log.error({ err: errorSummary(err) }, "run failed inside the runner");
        await deps.ledger.finish(req.requestId, { termination: "runner_error", exitCode: -1 });
        throw new ConnectError("the runner failed to run the skill", Code.Internal);
      } finally {
        release();
      }
    },

    async listSecretNames() {
      const names = deps.secrets.names();
      return create(ListSecretNamesResponseSchema, {
        names,
        bindings: names.map((n) => create(SecretBindingSchema, bindingSummary(deps.secrets.binding(n)!))),
      });
    },

    async getHealth(req) {
      return create(GetHealthResponseSchema, {
        runnerVersion: deps.runnerVersion,
        denoVersion: deps.denoVersion,
        secretCount: deps.secrets.size,
        isolation: deps.executor.isolation,
        maxConcurrentRuns: deps.queue.concurrency,
        activeRuns: deps.queue.activeCount,
        queuedRuns: deps.queue.queuedCount,
        egress: deps.executor.egress ?? "none",
        egressPrivateAllowed: deps.egressPrivateAllowed ?? [],
        signingPublicKey: deps.signer.publicKeyHex,
        signingKeySource: deps.signer.source,
        ...(req.includeProcess && deps.processReport && { process: processMessage(deps.processReport(), deps.denoFlags ?? []) }),
      });
    },
  });
}

function processMessage(r: ProcessFacts & { perRunUidsActive: number; egressProxy: string }, denoFlags: string[]) {
  const { socket, ...rest } = r;
  return { ...rest, denoFlags, ...(socket && { socket }) };
}

/** Everything the runner re-derives for itself. Any violation: refuse, log, run nothing. */
function checkRunRequest(req: RunSkillRequest, deps: RunnerServiceDeps): { spec: RunSpec; codeSha256: string } {
  if (!REQUEST_ID_PATTERN.test(req.requestId)) {
    throw refuse(deps, req, Code.InvalidArgument, "request_id must be exec_ + 16 lowercase hex");
  }
  if (!/^[A-Za-z0-9_.-]{0,64}$/.test(req.agent)) {
    throw refuse(deps, req, Code.InvalidArgument, "agent must be at most 64 characters of A-Z a-z 0-9 _ . -");
  }
  if (req.code.length === 0 || req.code.length > LIMITS.maxCodeBytes) {
    throw refuse(deps, req, Code.InvalidArgument, `code must be 1..${LIMITS.maxCodeBytes} bytes`);
  }
  if (!SHA256_HEX_PATTERN.test(req.codeSha256)) {
    throw refuse(deps, req, Code.InvalidArgument, "code_sha256 must be 64 lowercase hex");
  }
  const codeSha256 = sha256Hex(req.code);
  if (codeSha256 !== req.codeSha256) {
    throw refuse(deps, req, Code.InvalidArgument, "code hash mismatch: refusing to run unapproved bytes");
  }
  let codeText: string;
  try {
    codeText = new TextDecoder("utf-8", { fatal: true }).decode(req.code);
  } catch {
    throw refuse(deps, req, Code.InvalidArgument, "code is not valid UTF-8");
  }
  let spec: RunSpec;
  try {
    spec = resolveRunSpec(
      {
        secrets: req.secretNames,
        network: req.network,
        args: req.args.map((a) => ({ name: a.name, value: a.value })),
        timeoutSeconds: req.timeoutSeconds,
      },
      parseSkillHeader(codeText),
      deps.maxTimeoutSeconds,
    );
  } catch (err) {
    if (err instanceof PolicyError) {
      const code = err.code === "header_mismatch" ? Code.FailedPrecondition : Code.InvalidArgument;
      throw refuse(deps, req, code, `${err.code}: ${err.message}`);
    }
    throw err;
  }
  const unknown = spec.secretNames.filter((n) => !deps.secrets.has(n));
  if (unknown.length > 0) {
    throw refuse(deps, req, Code.FailedPrecondition, `unknown secret names: ${unknown.join(", ")}`);
  }
  // What the approver was shown must be what applies now: a binding changed (widened) after the
  // approval refuses the run.
  if (spec.secretNames.length > 0) {
    const now = runBindingsDigest(deps.secrets.bindings, spec.secretNames);
    if (req.approval?.bindingsSha256 !== now) {
      throw refuse(
        deps,
        req,
        Code.FailedPrecondition,
        req.approval?.bindingsSha256
          ? "the runner's bindings of these secrets changed since they were approved; submit the request again"
          : "the approval does not state the bindings it was given for (approval.bindings_sha256)",
      );
    }
  }
  // The runner's policy, not the request's: a bound secret is useful only toward its hosts, and
  // only an intercepting egress proxy can put it in there.
  for (const name of spec.secretNames) {
    const b = deps.secrets.binding(name)!;
    if (b.mode !== "placeholder") continue;
    if (!deps.executor.placeholders) {
      throw refuse(
        deps,
        req,
        Code.FailedPrecondition,
        `secret ${name} is bound to ${b.hosts.join(", ")} and this runner's egress (${deps.executor.egress ?? "none"}) cannot put it in there`,
      );
    }
    if (!b.hosts.some((h) => spec.network.includes(h))) {
      throw refuse(
        deps,
        req,
        Code.FailedPrecondition,
        `secret ${name} may only be used toward ${b.hosts.join(", ")} (the runner's binding); the request's network grants none of them`,
      );
    }
  }
  return { spec, codeSha256 };
}

function refuse(deps: RunnerServiceDeps, req: RunSkillRequest, code: Code, message: string): ConnectError {
  deps.logger.warn({ requestId: req.requestId.slice(0, 64), grpcCode: Code[code], reason: message }, "run refused");
  return new ConnectError(message, code);
}

function errorSummary(err: unknown): string {
  return err instanceof Error ? `${err.name}: ${err.message}` : String(err);
}
