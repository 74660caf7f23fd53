// The import rules of ARCHITECTURE.md, checked by `npm test` (scripts/test.sh) so the layout cannot drift.
// Each gateway room may import only the rooms named in its rule; the gateway and the vault-runner never
// import each other; the CLI needs only shared/ (an auditor installs it without the server).
const room = (name, mayImport) => ({
  name: `gateway-${name}`,
  comment: `gateway/src/${name}/ may import only: ${mayImport.join(", ") || "nothing"} of the other rooms (ARCHITECTURE.md)`,
  severity: "error",
  from: { path: `^gateway/src/${name}/` },
  to: {
    path: "^gateway/src/",
    pathNot: [
      `^gateway/src/${name}/`,
      ...mayImport.map((r) => (r.endsWith(".ts") ? `^gateway/src/${r.replace(".", "\\.")}$` : `^gateway/src/${r}/`)),
    ],
  },
});

module.exports = {
  forbidden: [
    { name: "no-circular", severity: "error", from: {}, to: { circular: true } },
    { name: "not-to-unresolvable", severity: "error", from: {}, to: { couldNotResolve: true } },
    {
      name: "gateway-not-runner",
      comment: "the privilege split: the gateway never imports the vault-runner",
      severity: "error",
      from: { path: "^gateway/" },
      to: { path: "^vault-runner/" },
    },
    {
      name: "runner-not-gateway",
      comment: "the privilege split: the vault-runner never imports the gateway",
      severity: "error",
      from: { path: "^vault-runner/" },
      to: { path: "^(gateway|cli)/" },
    },
    {
      name: "shared-stands-alone",
      comment: "shared/ is imported by both processes and imports neither",
      severity: "error",
      from: { path: "^shared/" },
      to: { path: "^(gateway|vault-runner|cli)/" },
    },
    {
      name: "cli-needs-only-shared",
      comment: "the CLI installs without the server: it imports shared/ and node only",
      severity: "error",
      from: { path: "^cli/" },
      to: { path: "^(gateway|vault-runner|proto)/" },
    },
    {
      name: "cli-no-server-packages",
      severity: "error",
      from: { path: "^cli/" },
      to: { path: "node_modules/(lmdb|grammy|hono|@hono|@connectrpc|pino|prom-client)/" },
    },
    {
      name: "nobody-imports-main",
      comment: "main.ts is the composition root",
      severity: "error",
      from: { path: "^gateway/src/" },
      to: { path: "^gateway/src/main\\.ts$" },
    },
    {
      name: "only-main-wires-consumers",
      comment: "telegram/ and notify/ are wired by main.ts only",
      severity: "error",
      from: { path: "^gateway/src/", pathNot: ["^gateway/src/main\\.ts$", "^gateway/src/telegram/", "^gateway/src/notify/"] },
      to: { path: "^gateway/src/(telegram|notify)/" },
    },
    room("store", ["errors.ts"]),
    room("approval", ["store", "errors.ts"]),
    room("runs", ["store", "errors.ts"]),
    room("notify", ["store"]),
    room("intake", ["approval", "store", "errors.ts"]),
    room("audit", ["runs", "store", "errors.ts", "config.ts"]),
    room("http", ["intake", "approval", "runs", "store", "errors.ts"]),
    room("operator", ["http", "approval", "audit", "store", "errors.ts"]),
    room("telegram", ["approval", "store", "http", "errors.ts"]),
    {
      name: "gateway-top-files",
      comment: "config.ts and errors.ts import no room",
      severity: "error",
      from: { path: "^gateway/src/(config|errors)\\.ts$" },
      to: { path: "^gateway/src/[a-z-]+/" },
    },
  ],
  options: {
    doNotFollow: { path: "node_modules" },
    tsPreCompilationDeps: true,
    tsConfig: { fileName: "tsconfig.json" },
    exclude: { path: "^dist/" },
    enhancedResolveOptions: {
      exportsFields: ["exports"],
      conditionNames: ["import", "require", "node", "default"],
      extensions: [".ts", ".js", ".mjs", ".json"],
    },
  },
};
