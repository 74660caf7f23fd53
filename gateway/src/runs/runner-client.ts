import { connect } from "node:net";
import { Code, ConnectError, createClient, type Client } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { VaultRunnerService } from "@oauth3/proto/runner/v1";
import { GatewayError } from "../errors.js";

export type RunnerClient = Client<typeof VaultRunnerService>;

/** A gRPC client for the vault-runner over its Unix socket (HTTP/2, standard gRPC protocol). */
export function createRunnerClient(socketPath: string): RunnerClient {
  const transport = createGrpcTransport({
    baseUrl: "http://vault-runner.invalid",
    nodeOptions: { createConnection: () => connect({ path: socketPath }) },
    readMaxBytes: 64 * 1024 * 1024,
    defaultTimeoutMs: 10_000,
  });
  return createClient(VaultRunnerService, transport);
}

/** The runner's sandbox and keys as /health, cards and the statement show them. */
export interface RunnerSummary {
  isolation: string;
  egress: string;
  egressPrivateAllowed: string[];
  signingKey: string;
  signingKeySource: string;
}

/**
 * What the gateway asks the runner besides runs, each answer bounded in time; an unreachable runner
 * is `undefined` (health) or a 503 (secret names), never a hang.
 */
export class RunnerQueries {
  constructor(
    private readonly runner: RunnerClient,
    /** Called when the gateway's own environment holds a runner secret's name (the split is broken). */
    private readonly onSplitViolation: (names: string[]) => void,
    private readonly env: NodeJS.ProcessEnv = process.env,
  ) {}

  async summary(): Promise<RunnerSummary | undefined> {
    const h = await this.health();
    return (
      h && {
        isolation: h.isolation,
        egress: h.egress,
        egressPrivateAllowed: h.egressPrivateAllowed,
        signingKey: h.signingPublicKey,
        signingKeySource: h.signingKeySource,
      }
    );
  }

  async health(includeProcess = false): Promise<Awaited<ReturnType<RunnerClient["getHealth"]>> | undefined> {
    try {
      return await this.runner.getHealth({ includeProcess }, { timeoutMs: 2000 });
    } catch {
      return undefined;
    }
  }

  /** The names of the secrets the runner holds (never values); also checks the split. */
  async secretNames(): Promise<ReadonlySet<string>> {
    let names: Set<string>;
    try {
      names = new Set((await this.runner.listSecretNames({}, { timeoutMs: 5000 })).names);
    } catch (err) {
      throw new GatewayError(
        "unavailable",
        "runner_unavailable",
        `the vault-runner is not reachable (${Code[ConnectError.from(err).code]})`,
      );
    }
    // A gateway that can see a secret's name in its own environment was given the runner's env.
    const leaked = Object.keys(this.env).filter((k) => names.has(k));
    if (leaked.length > 0) {
      this.onSplitViolation(leaked);
      throw new GatewayError("unavailable", "misconfigured", "gateway misconfiguration; request refused");
    }
    return names;
  }

  /** Like secretNames, for reports: an empty list when the runner cannot be asked. */
  async secretNamesOrNone(): Promise<string[]> {
    try {
      return (await this.runner.listSecretNames({}, { timeoutMs: 2000 })).names;
    } catch {
      return [];
    }
  }
}
