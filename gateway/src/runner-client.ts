import { connect } from "node:net";
import { createClient, type Client } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { VaultRunnerService } from "@oauth3/proto/runner/v1";

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
