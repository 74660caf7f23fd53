import { chmodSync, mkdirSync, rmSync } from "node:fs";
import { pino } from "pino";
import { loadRunnerConfig } from "./config.js";
import { denoVersion, resolveDenoBinary } from "./deno-binary.js";
import { DenoExecutor } from "./executor.js";
import { chooseIsolation } from "./isolation.js";
import { RunLedger } from "./ledger.js";
import { RunQueue } from "./run-queue.js";
import { loadSecrets } from "./secrets.js";
import { startRunnerServer } from "./server.js";
import { registerRunnerService } from "./service.js";

const RUNNER_VERSION = "0.1.0";

/** Composition root: the only place that reads process.env. */
async function main(): Promise<void> {
  const config = loadRunnerConfig(process.env);
  const logger = pino({ name: "vault-runner", level: config.logLevel });
  const denoPath = resolveDenoBinary(config.denoPath);
  const version = denoVersion(denoPath);
  const isolation = chooseIsolation({
    requested: config.isolation,
    denoPath,
    uidBase: config.skillUidBase,
    poolSize: config.maxConcurrent + 8,
    workDir: config.workDir,
  });
  if (isolation.warning) logger.warn(isolation.warning);
  const { store: secrets, warnings } = loadSecrets({ ...config, refuseShared: isolation.mode === "uid" });
  for (const warning of warnings) logger.warn(warning);
  mkdirSync(config.stateDir, { recursive: true, mode: 0o700 });
  chmodSync(config.stateDir, 0o700);
  const ledger = RunLedger.open(`${config.stateDir}/ledger`);
  const queue = new RunQueue(config.maxConcurrent, config.maxQueue);
  const executor = new DenoExecutor({
    denoPath,
    workDir: isolation.workDir,
    uidPool: isolation.uidPool,
    outputLimitBytes: config.outputLimitBytes,
    v8MaxOldSpaceMb: config.v8MaxOldSpaceMb,
  });
  const server = await startRunnerServer({
    socketPath: config.socketPath,
    maxTimeoutSeconds: config.maxTimeoutSeconds,
    routes: (router) =>
      registerRunnerService(router, {
        secrets,
        ledger,
        executor,
        queue,
        logger,
        denoVersion: version,
        runnerVersion: RUNNER_VERSION,
        maxTimeoutSeconds: config.maxTimeoutSeconds,
        outputLimitBytes: config.outputLimitBytes,
      }),
  });
  logger.info(
    {
      socket: config.socketPath,
      secretNames: secrets.names(),
      deno: version,
      isolation: executor.isolation,
      maxConcurrent: config.maxConcurrent,
    },
    "vault-runner listening",
  );

  let stopping = false;
  const stop = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    logger.info({ signal }, "vault-runner stopping");
    await server.close();
    await ledger.close();
    if (!config.workDir) rmSync(isolation.workDir, { recursive: true, force: true });
    process.exit(0);
  };
  process.on("SIGTERM", () => void stop("SIGTERM"));
  process.on("SIGINT", () => void stop("SIGINT"));
}

main().catch((err: unknown) => {
  // Start-up errors never carry secret values (loaders name secrets, not values).
  process.stderr.write(`vault-runner: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
});
