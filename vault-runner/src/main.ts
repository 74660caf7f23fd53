import { randomBytes } from "node:crypto";
import { chmodSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { pino, type Logger } from "pino";
import { EgressCa } from "./egress-ca.js";
import { EgressProxy } from "./egress-proxy.js";
import { iptablesAvailable, installSkillFirewall, type SkillFirewall } from "./firewall.js";
import type { UidPool } from "./uid-pool.js";
import { loadRunnerConfig } from "./config.js";
import { denoVersion, resolveDenoBinary } from "./deno-binary.js";
import { DenoExecutor } from "./executor.js";
import { chooseIsolation } from "./isolation.js";
import { RunLedger } from "./ledger.js";
import { RunQueue } from "./run-queue.js";
import { loadSecrets } from "./secrets.js";
import { pdeathsigWrapper, reapLeftovers } from "./orphan-guard.js";
import { processFacts } from "@oauth3/shared/process-report";
import { SigningKey } from "@oauth3/shared/signing-key";
import { fixedDenoFlags } from "./deno-invocation.js";
import { DstackAgent } from "./dstack.js";
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
  // The values now live in the SecretStore only: no child the runner spawns (iptables, Deno) inherits
  // SECRETS_JSON, and the config object passed around no longer holds it. (/proc/<pid>/environ still
  // shows the environment the runner was started with: only to its own uid, root in the container.)
  delete process.env.SECRETS_JSON;
  config.secretsJson = undefined;
  for (const warning of warnings) logger.warn(warning);
  mkdirSync(config.stateDir, { recursive: true, mode: 0o700 });
  chmodSync(config.stateDir, 0o700);
  const ledger = RunLedger.open(`${config.stateDir}/ledger`);
  const egress = await startEgress(config, isolation, logger);
  const listeningProxy = egress.proxy ?? egress.placeholderProxy;
  // In a dstack CVM the receipt key comes from the app's key (and is never on disk); otherwise a
  // local key on the runner's own volume.
  const dstack = config.dstackEndpoint ? await DstackAgent.connect(config.dstackEndpoint) : undefined;
  const signer = dstack
    ? SigningKey.fromSeed(await dstack.receiptSeed())
    : SigningKey.loadOrCreate(`${config.stateDir}/receipt-signing-key.pem`);
  const queue = new RunQueue(config.maxConcurrent, config.maxQueue);
  // No skill outlives this runner: the kernel kills each one when the runner dies (orphan-guard.ts),
  // and whatever a dead predecessor left (its work directory's runs, the pool's uids) is killed now.
  const deathSignalWrapper = pdeathsigWrapper();
  if (!deathSignalWrapper) {
    logger.warn("setpriv (util-linux) with --pdeathsig not found: a skill would outlive a runner that dies mid-run; install util-linux");
  }
  // Counted separately: a process the first finds may still show (as a zombie) to the second.
  const reaped = { byWorkDir: reapLeftovers(config.stateDir, isolation.workDir).length, byPoolUid: isolation.uidPool?.reapAll() ?? 0 };
  if (reaped.byWorkDir + reaped.byPoolUid > 0) logger.warn(reaped, "killed skill processes left running by an earlier runner");
  const executor = new DenoExecutor({
    deathSignalWrapper,
    denoPath,
    workDir: isolation.workDir,
    uidPool: isolation.uidPool,
    egress: egress.proxy,
    placeholderProxy: egress.placeholderProxy,
    caFile: installSkillCa(config.extraCaFile, undefined, isolation.workDir, "extra-ca.pem"),
    placeholderCaFile: installSkillCa(config.extraCaFile, egress.ca, isolation.workDir, "skill-ca.pem"),
    outputLimitBytes: config.outputLimitBytes,
    v8MaxOldSpaceMb: config.v8MaxOldSpaceMb,
    memoryLimitMb: config.memoryLimitMb,
    diskLimitMb: config.diskLimitMb,
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
        egressPrivateAllowed: [...config.egressAllowPrivate].sort(),
        memoryLimitMb: config.memoryLimitMb,
        diskLimitMb: config.diskLimitMb,
        signer,
        dstack,
        denoFlags: fixedDenoFlags({ v8MaxOldSpaceMb: config.v8MaxOldSpaceMb, proxy: egress.proxy !== undefined }),
        processReport: () => {
          return {
            ...processFacts(process.env, config.socketPath),
            perRunUidsActive: isolation.uidPool?.activeCount ?? 0,
            // The listening proxy, whichever mode: deno-only's placeholder proxy listens too.
            egressProxy: listeningProxy ? `${listeningProxy.address}:${listeningProxy.port}` : "",
          };
        },
      }),
  });
  logger.info(
    {
      socket: config.socketPath,
      secretNames: secrets.names(),
      deno: version,
      isolation: executor.isolation,
      egress: executor.egress,
      receiptKey: signer.publicKeyHex,
      receiptKeySource: signer.source,
      dstack: dstack?.endpoint ?? null,
      egressPrivateAllowed: [...config.egressAllowPrivate],
      egressStaticHosts: [...config.egressHosts.keys()],
      maxConcurrent: config.maxConcurrent,
    },
    "vault-runner listening",
  );

  // A bug anywhere (or something a skill or an upstream sends that still reaches one) must not
  // leave skills running without their watchdogs: every skill group is killed, then the runner
  // exits. Only the error's name and stack frames are logged: a message may quote data.
  const crash = (kind: string) => (err: unknown) => {
    const killed = executor.killAll(); // the firewall rules stay: skill uids remain shut in
    logger.fatal({ kind, error: errorSummary(err), skillsKilled: killed }, "vault-runner crashed: every skill was killed; exiting");
    process.exit(70);
  };
  process.on("uncaughtException", crash("uncaught exception"));
  process.on("unhandledRejection", crash("unhandled rejection"));

  let stopping = false;
  const stop = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    logger.info({ signal }, "vault-runner stopping");
    await server.close();
    await executor.idle();
    egress.firewall?.remove();
    await egress.proxy?.stop();
    await egress.placeholderProxy?.stop();
    await ledger.close();
    if (!config.workDir) rmSync(isolation.workDir, { recursive: true, force: true });
    process.exit(0);
  };
  process.on("SIGTERM", () => void stop("SIGTERM"));
  process.on("SIGINT", () => void stop("SIGINT"));
}

/**
 * A CA bundle skills trust (DENO_CERT), readable by skill uids: the operator's RUNNER_EXTRA_CA_FILE
 * (a TLS-inspecting network, tests) and, for runs that hold placeholders, the runner's egress CA
 * (its key stays in the runner's memory). 0644 in the 0711 work directory.
 */
function installSkillCa(extraFile: string | undefined, ca: EgressCa | undefined, workDir: string, name: string): string | undefined {
  const parts = [...(ca ? [ca.certPem] : []), ...(extraFile ? [readFileSync(extraFile, "utf8")] : [])];
  if (parts.length === 0) return undefined;
  const target = `${workDir}/${name}`;
  writeFileSync(target, parts.join("\n"), { mode: 0o644 });
  chmodSync(target, 0o644);
  return target;
}

/**
 * Egress enforcement. With per-run uids: the proxy plus firewall rules, or, if iptables cannot be
 * used, a refusal to start unless RUNNER_EGRESS=deno-only was asked for. With a shared uid the
 * firewall cannot single skills out (it would cut off the runner): Deno's flags only, labelled.
 */
async function startEgress(
  config: ReturnType<typeof loadRunnerConfig>,
  isolation: { mode: string; uidPool?: UidPool },
  logger: Logger,
): Promise<{ proxy?: EgressProxy; placeholderProxy?: EgressProxy; firewall?: SkillFirewall; ca: EgressCa }> {
  const firewallPossible = isolation.mode === "uid" && iptablesAvailable();
  const wanted = config.egress === "auto" ? (firewallPossible ? "proxy+firewall" : "deno-only") : config.egress;
  const ca = await EgressCa.create();
  const proxyOptions = {
    allowPrivate: config.egressAllowPrivate,
    staticHosts: config.egressHosts,
    logger,
    ca,
    extraUpstreamCa: config.extraCaFile ? readFileSync(config.extraCaFile, "utf8") : undefined,
    maxBodyBytes: config.egressBodyMaxBytes,
  };
  if (wanted === "deno-only") {
    logger.warn(
      "egress: deno-only: Deno's --allow-net/--deny-net alone; names resolving to internal addresses and IPv6 " +
        "internals are not stopped outside Deno. For proxy+firewall run the runner as root (or CAP_SETUID/SETGID/" +
        "KILL/CHOWN/NET_ADMIN) with iptables installed; set RUNNER_EGRESS=proxy+firewall to refuse to start without it.",
    );
    // Runs that hold placeholders still need the proxy that puts the values in: it listens on a
    // random loopback address, the one address those runs' --deny-net leaves out.
    const bytes = randomBytes(3);
    const host = `127.${1 + (bytes[0]! % 254)}.${bytes[1]}.${1 + (bytes[2]! % 254)}`;
    const placeholderProxy = new EgressProxy({ ...proxyOptions, host });
    await placeholderProxy.start();
    return { placeholderProxy, ca };
  }
  if (!isolation.uidPool) throw new Error("RUNNER_EGRESS=proxy+firewall needs per-run uids (RUNNER_ISOLATION=uid)");
  if (!firewallPossible) {
    throw new Error(
      "egress firewall unavailable: install iptables and give the runner CAP_NET_ADMIN, or set RUNNER_EGRESS=deno-only to " +
        "accept the weaker mode",
    );
  }
  const proxy = new EgressProxy(proxyOptions);
  const port = await proxy.start();
  const firewall = installSkillFirewall(isolation.uidPool.base, isolation.uidPool.size, port);
  return { proxy, firewall, ca };
}

/** An error's class and stack frames, never its message (which may quote a value). */
function errorSummary(err: unknown): string {
  if (!(err instanceof Error)) return typeof err;
  const frames = (err.stack ?? "")
    .split("\n")
    .filter((l) => /^\s+at /.test(l))
    .slice(0, 8)
    .map((l) => l.trim());
  return [err.name, ...frames].join(" | ");
}

main().catch((err: unknown) => {
  // Start-up errors never carry secret values (loaders name secrets, not values).
  process.stderr.write(`vault-runner: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
});
