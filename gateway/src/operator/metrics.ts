import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from "prom-client";
import type { RequestStore } from "../store/store.js";

export interface RunnerQueue {
  activeRuns: number;
  queuedRuns: number;
}

/**
 * Operator metrics (Prometheus text format), served on the operator socket only, never on the agent
 * port. Fed by the store's committed transitions, so they count what actually happened.
 */
export function createMetrics(store: RequestStore, runnerQueue: () => Promise<RunnerQueue | undefined>): Registry {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: "oauth3_gateway_" });
  const transitions = new Counter({
    name: "oauth3_requests_total",
    help: "Requests reaching each status",
    labelNames: ["status"],
    registers: [registry],
  });
  const approval = new Histogram({
    name: "oauth3_approval_latency_seconds",
    help: "Submission to decision",
    labelNames: ["decision"],
    buckets: [5, 15, 30, 60, 120, 300, 600, 1800],
    registers: [registry],
  });
  const duration = new Histogram({
    name: "oauth3_run_duration_seconds",
    help: "Skill run time as the runner measured it",
    labelNames: ["reason"],
    buckets: [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300],
    registers: [registry],
  });
  const limits = new Counter({
    name: "oauth3_limit_hits_total",
    help: "Runs ended by a limit",
    labelNames: ["reason"],
    registers: [registry],
  });
  const auditFailures = new Counter({
    name: "oauth3_audit_write_failures_total",
    help: "State changes refused because their audit entry could not be written",
    registers: [registry],
  });
  new Gauge({
    name: "oauth3_pending_requests",
    help: "Requests awaiting a decision",
    registers: [registry],
    collect() {
      this.set(store.list((r) => r.status === "pending").length);
    },
  });
  new Gauge({
    name: "oauth3_runner_queue",
    help: "Runs active and queued in the vault-runner",
    labelNames: ["state"],
    registers: [registry],
    async collect() {
      const q = await runnerQueue();
      if (q) {
        this.set({ state: "active" }, q.activeRuns);
        this.set({ state: "queued" }, q.queuedRuns);
      }
    },
  });

  store.onChange(({ request: r, previous }) => {
    if (previous?.status === r.status) return; // e.g. an output purge: not a transition
    transitions.inc({ status: r.status });
    if ((r.status === "approved" || r.status === "denied") && r.decidedAt)
      approval.observe({ decision: r.status }, (r.decidedAt - r.createdAt) / 1000);
    if (r.result && (r.status === "completed" || r.status === "failed") && r.outputPurgedAt === undefined) {
      duration.observe({ reason: r.result.reason }, r.result.duration / 1000);
      if (["timeout", "memory", "disk", "output_limit"].includes(r.result.reason)) limits.inc({ reason: r.result.reason });
    }
  });
  store.onAuditFailure(() => auditFailures.inc());
  return registry;
}
