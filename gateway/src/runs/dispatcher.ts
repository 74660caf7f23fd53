import { bindingsDigest } from "@oauth3/shared";
import { Code, ConnectError } from "@connectrpc/connect";
import { Termination, type RunSkillResponse } from "@oauth3/proto/runner/v1";
import { retry } from "@oauth3/shared";
import type { Logger } from "pino";
import type { RunnerClient } from "./runner-client.js";
import type { ExecRequest, RequestStore, RunResult } from "../store/store.js";

export interface DispatcherDeps {
  store: RequestStore;
  runner: RunnerClient;
  logger: Logger;
  /** Waits between attempts when the runner is unreachable. */
  retryDelaysMs?: number[];
  /** Delays between attempts to record a finished run's outcome (a full disk may clear). */
  finishRetryMs?: number[];
}

const REASONS: Record<Termination, string> = {
  [Termination.UNSPECIFIED]: "unknown",
  [Termination.EXITED]: "exited",
  [Termination.TIMEOUT]: "timeout",
  [Termination.OUTPUT_LIMIT]: "output_limit",
  [Termination.SIGNALED]: "signaled",
  [Termination.SPAWN_FAILED]: "spawn_failed",
  [Termination.MEMORY]: "memory",
  [Termination.DISK]: "disk",
};

/**
 * Sends approved requests to the runner. `approved -> executing` is a compare-and-set, so a request
 * is sent by one dispatcher call only; the runner's own ledger refuses any second delivery of the
 * same id, so even a retry after a lost answer cannot run it twice.
 */
export class Dispatcher {
  private readonly inFlight = new Set<Promise<void>>();
  /** Runs found `executing` at start whose `interrupted` is not yet on disk. */
  private readonly leftOver = new Set<string>();
  private readonly retryDelaysMs: number[];
  private readonly finishRetryMs: number[];

  constructor(private readonly deps: DispatcherDeps) {
    this.retryDelaysMs = deps.retryDelaysMs ?? [250, 1000, 3000, 10_000];
    this.finishRetryMs = deps.finishRetryMs ?? [1000, 5000, 15_000, 30_000, 60_000, 120_000, 300_000];
  }

  /** Runs every request the moment its approval is on disk (store change events). Returns the unsubscribe. */
  start(): () => void {
    return this.deps.store.onChange(({ request }) => {
      if (request.status === "approved") this.dispatch(request.id);
    });
  }

  dispatch(id: string): void {
    const job = this.execute(id).catch((err: unknown) => {
      this.deps.logger.error({ requestId: id, err: String(err) }, "dispatch failed");
    });
    this.inFlight.add(job);
    void job.finally(() => this.inFlight.delete(job));
  }

  /** After a restart: runs that were in flight are `interrupted` (never re-run); approved ones go. */
  async recover(): Promise<void> {
    for (const r of this.deps.store.list((x) => x.status === "executing")) this.leftOver.add(r.id);
    await this.markLeftOver();
    for (const r of this.deps.store.list((x) => x.status === "approved")) this.dispatch(r.id);
  }

  /**
   * Records runs an earlier gateway left `executing` as interrupted (never re-run). Never rejects:
   * one that cannot be written (a full disk) stays in the set and is tried again at the next call
   * (the expiry sweep calls this), so start-up goes on whatever the disk says.
   */
  async markLeftOver(): Promise<void> {
    for (const id of [...this.leftOver]) {
      try {
        await this.deps.store.transition(id, ["executing"], {
          status: "interrupted",
          completedAt: Date.now(),
          error: "the gateway stopped while this run was in flight; it will not be run again",
        });
      } catch (err) {
        this.deps.logger.error({ requestId: id, err: String(err) }, "could not record an interrupted run; retrying later");
        continue;
      }
      this.leftOver.delete(id);
    }
  }

  /** Resolves when no run is in flight (runs started meanwhile included). */
  async idle(): Promise<void> {
    while (this.inFlight.size > 0) await Promise.allSettled([...this.inFlight]);
  }

  /** Waits for in-flight runs, at most `ms`. Runs still going stay `executing` (then interrupted). */
  async drain(ms: number): Promise<void> {
    await Promise.race([Promise.allSettled([...this.inFlight]), new Promise((resolve) => setTimeout(resolve, ms).unref())]);
  }

  private async execute(id: string): Promise<void> {
    const request = await this.deps.store.transition(id, ["approved"], {
      status: "executing",
      executedAt: Date.now(),
    });
    if (!request) return; // another call took it, or it is no longer approved
    const code = this.deps.store.getCode(id);
    const log = this.deps.logger.child({ requestId: id });
    if (!code) return this.finish(request, { status: "failed", error: "stored code is missing" });

    let response: RunSkillResponse;
    try {
      response = await this.callRunner(request, code, log);
    } catch (err) {
      const ce = ConnectError.from(err);
      if (ce.code === Code.AlreadyExists) {
        return this.finish(request, {
          status: "interrupted",
          error: "the runner had already accepted this request; its outcome is unknown",
        });
      }
      if (neverReached(ce)) {
        log.warn({ grpcCode: Code[ce.code], reason: ce.rawMessage }, "runner unreachable; the skill never started");
        return this.finish(request, { status: "failed", error: `runner unreachable, the skill never started: ${ce.rawMessage}` });
      }
      if (REFUSALS.has(ce.code)) {
        log.warn({ grpcCode: Code[ce.code], reason: ce.rawMessage }, "runner refused the run");
        return this.finish(request, { status: "failed", error: `runner refused, the skill did not run: ${ce.rawMessage}` });
      }
      // The runner got the request and then stopped answering (it died, was restarted, or failed
      // inside the run): the skill may have run, in part or in full. Never re-run; say so.
      log.warn({ grpcCode: Code[ce.code], reason: ce.rawMessage }, "runner stopped answering during the run");
      return this.finish(request, {
        status: "interrupted",
        error:
          `the runner stopped answering during the run (${Code[ce.code]}: ${ce.rawMessage}); ` +
          "the skill may have run, its outcome is unknown, and it will not be run again",
      });
    }
    const result = toResult(response);
    log.info({ reason: result.reason, exitCode: result.exitCode, duration: result.duration }, "run finished");
    await this.finish(request, { status: result.success ? "completed" : "failed", result });
  }

  private callRunner(request: ExecRequest, code: Buffer, log: Logger): Promise<RunSkillResponse> {
    // Only a request that never reached the runner is retried (it would run an id at most once
    // anyway: its ledger refuses a second delivery).
    return retry(
      () =>
        this.deps.runner
          .runSkill(
            {
              requestId: request.id,
              code,
              codeSha256: request.codeSha256,
              secretNames: request.secretNames,
              network: request.network,
              args: request.args,
              timeoutSeconds: request.timeoutSeconds,
              agent: request.agent ?? "",
              approval: {
                decidedBy: request.decidedBy ?? "",
                channel: request.decisionChannel ?? "",
                decidedAtMs: BigInt(request.decidedAt ?? 0),
                // What the approver was shown (the runner refuses the run if its bindings differ now).
                bindingsSha256: bindingsDigest(request.secretBindings ?? []),
              },
            },
            { timeoutMs: (request.timeoutSeconds + 30) * 1000 },
          )
          .catch((err: unknown) => {
            throw ConnectError.from(err);
          }),
      {
        delaysMs: this.retryDelaysMs,
        retryable: (err) => neverReached(err as ConnectError),
        onRetry: (_err, attempt, delay) => log.warn({ attempt, delay }, "runner unavailable, retrying"),
      },
    );
  }

  private async finish(
    request: ExecRequest,
    patch: { status: "completed" | "failed" | "interrupted"; result?: RunResult; error?: string },
  ): Promise<void> {
    // The outcome exists only in memory until this write lands: on a failure (a full disk) it is
    // retried, so that an operator who frees space keeps the result and its receipt.
    await retry(() => this.deps.store.transition(request.id, ["executing"], { ...patch, completedAt: Date.now() }), {
      delaysMs: this.finishRetryMs,
      onRetry: (err, attempt, delay) =>
        this.deps.logger.error({ requestId: request.id, attempt, delay, err: String(err) }, "could not record the run's outcome; retrying"),
    });
  }
}

/** The runner's own refusals: it answered, and nothing ran (service.ts refuses before claiming). */
const REFUSALS = new Set([
  Code.InvalidArgument,
  Code.FailedPrecondition,
  Code.ResourceExhausted,
  Code.PermissionDenied,
  Code.NotFound,
  Code.Unauthenticated,
  Code.OutOfRange,
]);

/** Errors of connecting to the socket: the request cannot have reached the runner. */
const CONNECT_ERRORS = new Set(["ENOENT", "ECONNREFUSED", "EACCES", "ENOTSOCK", "ECONNABORTED"]);

function neverReached(ce: ConnectError): boolean {
  for (let e: unknown = ce.cause; e; e = (e as { cause?: unknown }).cause) {
    const code = (e as { code?: unknown }).code;
    if (typeof code === "string" && CONNECT_ERRORS.has(code)) return true;
  }
  return false;
}

function toResult(r: RunSkillResponse): RunResult {
  const reason = REASONS[r.termination] ?? "unknown";
  return {
    success: r.termination === Termination.EXITED && r.exitCode === 0,
    stdout: r.stdout,
    stderr: r.stderr,
    exitCode: r.exitCode,
    duration: r.durationMs,
    reason,
    truncated: r.stdoutTruncated || r.stderrTruncated,
    redacted: r.redacted,
    policy: {
      denoArgs: r.policy?.denoArgs ?? [],
      envNames: r.policy?.envNames ?? [],
      allowedHosts: r.policy?.allowedHosts ?? [],
      timeoutSeconds: r.policy?.timeoutSeconds ?? 0,
      denoVersion: r.policy?.denoVersion ?? "",
      isolation: r.policy?.isolation ?? "",
      egress: r.policy?.egress ?? "",
      egressPrivateAllowed: r.policy?.egressPrivateAllowed ?? [],
      secrets: (r.policy?.secrets ?? []).map((b) => ({ name: b.name, mode: b.mode, hosts: b.hosts, places: b.places })),
      violations: (r.policy?.violations ?? []).map((v) => ({ secret: v.secret, host: v.host, where: v.where })),
      secretsUsed: r.policy?.secretsUsed ?? [],
    },
    ...(r.receipt && {
      receipt: {
        payloadJson: r.receipt.payloadJson,
        signature: Buffer.from(r.receipt.signature).toString("base64"),
        publicKey: r.receipt.publicKey,
      },
    }),
  };
}
