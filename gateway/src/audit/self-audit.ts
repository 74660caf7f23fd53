import { existsSync } from "node:fs";
import { toJson } from "@bufbuild/protobuf";
import { DENO_BASE_FLAGS } from "@oauth3/shared";
import { ProcessReportSchema, type GetHealthResponse } from "@oauth3/proto/runner/v1";
import { processFacts, socketFacts, type ProcessFacts, type SocketFacts } from "@oauth3/shared/process-report";
import type { RunnerQueries } from "../runs/runner-client.js";

export type CheckStatus = "ok" | "warn" | "fail";

export interface Check {
  check: string;
  status: CheckStatus;
  detail: string;
}

export interface SelfAuditInput {
  gateway: ProcessFacts;
  /** The runner's answer to GetHealth (with its process report), or undefined if unreachable. */
  runner: GetHealthResponse | undefined;
  /** Names of the secrets the runner holds (to spot them in the gateway's environment). */
  secretNames: readonly string[];
  operatorSocket: SocketFacts | undefined;
  /** Paths where a dstack socket would be (the gateway must not have one). */
  dstackPaths?: readonly string[];
}

const RUNNER_FOREIGN = /^(TELEGRAM_|AGENT_TOKENS$|AGENT_NOTIFY_TOKEN$)/;
const GATEWAY_FOREIGN = /^(SECRETS_|RUNNER_DSTACK_ENDPOINT$|DSTACK_)/;
const FORBIDDEN_DENO_FLAG = /^(-A|--allow-all|--allow-(read|write|run|ffi|sys|import|net|env)(=.*)?)$/;
const DSTACK_PATHS = ["/var/run/dstack.sock", "/run/dstack.sock", "/var/run/dstack/dstack.sock", "/run/dstack/dstack.sock"];

const mode = (m: number) => `0${m.toString(8)}`;

/**
 * The split self-audit: what each process says about itself, and every way the deployment breaks
 * the privilege split (fail) or weakens it (warn). Pure: main gathers the facts.
 */
export function selfAudit(input: SelfAuditInput): { ok: boolean; checks: Check[]; gateway: ProcessFacts; runner: unknown } {
  const checks: Check[] = [];
  const add = (check: string, status: CheckStatus, detail: string) => checks.push({ check, status, detail });
  const g = input.gateway;
  const r = input.runner?.process;

  const leaked = g.envNames.filter((n) => GATEWAY_FOREIGN.test(n) || input.secretNames.includes(n));
  add(
    "gateway environment holds no runner secrets",
    leaked.length ? "fail" : "ok",
    leaked.length ? `the gateway can see ${leaked.join(", ")}` : `${g.envNames.length} variables, none a secret name, SECRETS_* or dstack`,
  );
  const dstack = (input.dstackPaths ?? DSTACK_PATHS).filter((p) => existsSync(p));
  add(
    "gateway has no dstack socket",
    dstack.length ? "fail" : "ok",
    dstack.length
      ? `${dstack.join(", ")} exists in the gateway's view: it could derive the runner's keys (GetKey is per app)`
      : "none of the dstack socket paths exist here",
  );
  if (input.operatorSocket) {
    const o = input.operatorSocket;
    const open = (o.dirMode & 0o077) !== 0 || (o.socketMode & 0o077) !== 0;
    add("operator socket is private", open ? "fail" : "ok", `dir ${mode(o.dirMode)} uid ${o.dirUid}, socket ${mode(o.socketMode)}`);
  }

  if (!input.runner || !r) {
    add("runner reachable", "fail", "the vault-runner did not answer GetHealth: nothing about it can be checked");
    return { ok: false, checks, gateway: g, runner: null };
  }
  add("runner reachable", "ok", `vault-runner ${input.runner.runnerVersion}, pid ${r.pid}, uid ${r.uid}, gid ${r.gid}`);
  const foreign = r.envNames.filter((n) => RUNNER_FOREIGN.test(n));
  add(
    "runner environment holds no gateway credentials",
    foreign.length ? "fail" : "ok",
    foreign.length ? `the runner can see ${foreign.join(", ")}` : `${r.envNames.length} variables, no TELEGRAM_* or agent tokens`,
  );

  const samePidNs = g.pidNamespace !== "" && g.pidNamespace === r.pidNamespace;
  if (!samePidNs)
    add("gateway cannot reach the runner's process", "ok", `separate PID namespaces (${g.pidNamespace || "?"} / ${r.pidNamespace || "?"})`);
  else if (g.uid === 0 || g.uid === r.uid) {
    add(
      "gateway cannot reach the runner's process",
      "fail",
      `same PID namespace and the gateway runs as uid ${g.uid} (runner uid ${r.uid}): it can read the runner's memory through ` +
        `/proc or ptrace. ` +
        "Run them in separate containers (compose.yaml) or as different non-root users",
    );
  } else
    add(
      "gateway cannot reach the runner's process",
      "ok",
      `same PID namespace, but the gateway (uid ${g.uid}) is neither root nor the runner's uid (${r.uid})`,
    );

  const s = r.socket;
  if (!s) add("runner socket restricted", "fail", "the runner did not report its socket");
  else {
    const open = (s.dirMode & 0o007) !== 0 || (s.socketMode & 0o007) !== 0;
    add(
      "runner socket restricted",
      open ? "fail" : "ok",
      `${s.path}: dir ${mode(s.dirMode)} ${s.dirUid}:${s.dirGid}, socket ${mode(s.socketMode)} ${s.socketUid}:${s.socketGid}`,
    );
  }
  const expected = new Set([s ? `unix:${s.path}` : "", r.egressProxy ? `tcp:${r.egressProxy}` : ""]);
  const extra = r.listening.filter((l) => !expected.has(l));
  add(
    "runner listens only on its socket (and the loopback egress proxy)",
    extra.length ? "fail" : "ok",
    extra.length ? `also listening: ${extra.join(", ")}` : r.listening.join(", ") || "(none seen)",
  );

  const missing = DENO_BASE_FLAGS.filter((f) => !r.denoFlags.includes(f));
  const forbidden = r.denoFlags.filter((f) => FORBIDDEN_DENO_FLAG.test(f));
  add(
    "Deno flags deny everything not granted per run",
    missing.length || forbidden.length ? "fail" : "ok",
    missing.length || forbidden.length
      ? `missing ${missing.join(" ") || "-"}; forbidden ${forbidden.join(" ") || "-"}`
      : `Deno ${input.runner.denoVersion}: ${r.denoFlags.join(" ")}`,
  );
  add(
    "per-run uids",
    input.runner.isolation === "per-run-uid" ? "ok" : "fail",
    input.runner.isolation === "per-run-uid"
      ? `active (${r.perRunUidsActive} in use now)`
      : `${input.runner.isolation}: skills run as the runner's own uid and could read its files (ledger, key, secrets file)`,
  );
  add(
    "egress enforced outside Deno",
    input.runner.egress === "proxy+firewall" ? "ok" : "warn",
    input.runner.egress === "proxy+firewall"
      ? `proxy ${r.egressProxy} with per-uid firewall rules`
      : `${input.runner.egress}: Deno's own flags only`,
  );
  add(
    "receipt key from the TEE",
    input.runner.signingKeySource === "dstack" ? "ok" : "warn",
    input.runner.signingKeySource === "dstack"
      ? "derived through the dstack guest agent"
      : "local key file (no dstack guest agent configured)",
  );

  return {
    ok: !checks.some((c) => c.status === "fail"),
    checks,
    gateway: g,
    runner: toJson(ProcessReportSchema, r, { alwaysEmitImplicit: true }),
  };
}

/** The facts gathered for `selfAudit`: this process, the runner's report, the operator socket. */
export async function gatewaySelfAudit(runner: RunnerQueries, operatorSocket: string): Promise<ReturnType<typeof selfAudit>> {
  const [health, secretNames] = await Promise.all([runner.health(true), runner.secretNamesOrNone()]);
  return selfAudit({
    gateway: processFacts(process.env, operatorSocket),
    runner: health,
    secretNames,
    operatorSocket: socketFacts(operatorSocket),
  });
}
