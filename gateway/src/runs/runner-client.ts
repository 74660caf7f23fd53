import { connect } from "node:net";
import { Code, ConnectError, createClient, type Client } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { VaultRunnerService } from "@oauth3/proto/runner/v1";
import { GatewayError } from "../errors.js";
import type { SecretUse } from "../store/store.js";

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

/** Secret name -> the runner's binding of it (undefined from a runner that reports none). */
export type HeldSecrets = ReadonlyMap<string, SecretUse | undefined>;

/** A ListSecretNames answer as HeldSecrets. */
export function heldSecrets(res: { names: string[]; bindings: Array<{ name: string; mode: string; hosts: string[]; places: string[] }> }) {
  const bindings = new Map(res.bindings.map((b) => [b.name, { name: b.name, mode: b.mode, hosts: [...b.hosts], places: [...b.places] }]));
  return new Map(res.names.map((n) => [n, bindings.get(n)]));
}

/** The runner's sandbox and keys as /health, cards and the statement show them. */
export interface RunnerSummary {
  isolation: string;
  egress: string;
  egressPrivateAllowed: string[];
  signingKey: string;
  signingKeySource: string;
  /** Each secret the runner holds with its binding (never a value); empty when it could not be asked. */
  secrets: SecretUse[];
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
    const [h, held] = await Promise.all([
      this.health(),
      this.runner.listSecretNames({}, { timeoutMs: 2000 }).then(heldSecrets, () => new Map<string, SecretUse | undefined>()),
    ]);
    return (
      h && {
        secrets: [...held].map(([name, b]) => b ?? { name, mode: "unknown", hosts: [], places: [] }),
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

  /**
   * The secrets the runner holds, by name, each with the runner's binding (never a value); also
   * checks the split.
   */
  async secretNames(): Promise<HeldSecrets> {
    let names: Map<string, SecretUse | undefined>;
    try {
      const res = await this.runner.listSecretNames({}, { timeoutMs: 5000 });
      names = heldSecrets(res);
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
