import { createHash } from "node:crypto";
import { canonicalJson } from "./canonical-json.js";

/** A secret's binding as the runner reports it (ListSecretNames, results, receipts): never a value. */
export interface SecretBindingSummary {
  name: string;
  /** "placeholder" | "env" */
  mode: string;
  hosts: string[];
  places: string[];
}

/**
 * The digest of the bindings of a run's secrets: sha256 of the RFC 8785 JSON of the summaries,
 * sorted by name. The gateway computes it over the bindings the approver was shown and sends it
 * with the approval; the runner computes it over its own and refuses a run where they differ, so a
 * binding changed after approval cannot widen what was approved. Receipts carry it.
 */
export function bindingsDigest(summaries: readonly SecretBindingSummary[]): string {
  const doc = [...summaries]
    .sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))
    .map((s) => ({ name: s.name, mode: s.mode, hosts: [...s.hosts], places: [...s.places] }));
  return createHash("sha256").update(canonicalJson(doc)).digest("hex");
}
