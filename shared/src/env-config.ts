import { z } from "zod";

/**
 * What both processes and the CLI do with their environment, written once: an integer variable
 * with bounds and a default, "" read as unset, one error listing every bad variable, the key list
 * derived from the schema (the launcher passes each process exactly its own keys), and the default
 * paths both sides must agree on.
 */
export const DEFAULT_PATHS = {
  runnerSocket: "./data/run/runner.sock",
  operatorSocket: "./data/operator/operator.sock",
  gatewayDb: "./data/gateway",
  runnerState: "./data/runner",
} as const;

/** An integer variable within [min, max], `dflt` when unset. */
export const envInt = (min: number, max: number, dflt: number) => z.coerce.number().int().min(min).max(max).default(dflt);

/**
 * A comma-separated list variable: items trimmed (whitespace inside an item is an error), empty items
 * dropped, lower-cased when `lower`, each checked against `item`; every bad item is named with
 * `message`. Unset is the empty list.
 */
export function commaList(item: RegExp, message: string, options: { lower?: boolean } = {}) {
  return z
    .string()
    .default("")
    .transform((s, ctx) => {
      const items = s
        .split(",")
        .map((x) => x.trim())
        .map((x) => (options.lower ? x.toLowerCase() : x))
        .filter(Boolean);
      for (const bad of items.filter((x) => !item.test(x))) ctx.addIssue({ code: "custom", message: `"${bad}" ${message}` });
      return items;
    });
}

export const LOG_LEVEL = z.enum(["fatal", "error", "warn", "info", "debug", "trace", "silent"]).default("info");

/** Every variable a schema reads, in its order. */
export function envKeys(schema: z.ZodObject): readonly string[] {
  return Object.keys(schema.shape);
}

/**
 * The environment parsed by `schema`: an empty value means "not set" (compose passes an unset
 * `${VAR:-}` as ""), never "set to nothing". Variables in `foreign` (another process's) are refused
 * first, with `foreignHint` saying why; then every invalid variable is named in one error.
 */
export function parseEnv<S extends z.ZodObject>(
  schema: S,
  rawEnv: NodeJS.ProcessEnv,
  who: string,
  foreign?: { test: (key: string) => boolean; hint: string },
): z.infer<S> {
  const env = Object.fromEntries(Object.entries(rawEnv).filter(([, v]) => v !== undefined && v !== ""));
  const found = foreign ? Object.keys(env).filter((k) => foreign.test(k)) : [];
  if (found.length > 0) throw new Error(`${who} refuses to start: its environment contains ${found.join(", ")}. ${foreign!.hint}`);
  const parsed = schema.safeParse(env);
  if (!parsed.success) throw new Error(`invalid ${who} configuration: ${z.prettifyError(parsed.error)}`);
  return parsed.data;
}
