import { test, after } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { once } from "node:events";
import { lstatSync, mkdirSync, statSync, writeFileSync } from "node:fs";
import { connect as netConnect } from "node:net";
import { connect as http2Connect } from "node:http2";
import { join } from "node:path";
import * as grpc from "@grpc/grpc-js";
import { create, type DescMessage, type MessageShape } from "@bufbuild/protobuf";
import {
  ListSecretNamesRequestSchema,
  ListSecretNamesResponseSchema,
  RunSkillRequestSchema,
  RunSkillResponseSchema,
  Termination,
} from "@oauth3/proto/runner/v1";
import { startRunnerServer } from "../src/server.ts";
import { IS_ROOT, realDenoExecutor, routesFor, runnerDeps, skillRequest } from "../../test/helpers/runner-fixture.ts";
import { grpcUnary } from "../../test/helpers/grpc-js.ts";
import { tempDir } from "../../test/helpers/tmp.ts";

const dir = tempDir("oauth3-grpc-");
const socketPath = join(dir, "run", "runner.sock");
const deps = runnerDeps(realDenoExecutor(dir, 62_100));
const server = await startRunnerServer({ socketPath, routes: routesFor(deps), maxTimeoutSeconds: 60 });
after(() => server.close());

const client = new grpc.Client(`unix://${socketPath}`, grpc.credentials.createInsecure());
after(() => client.close());

const unary = <I extends DescMessage, O extends DescMessage>(
  method: string,
  input: I,
  output: O,
  message: MessageShape<I>,
  options: grpc.CallOptions = {},
) => grpcUnary(client, method, input, output, message, options);

test("grpc-js (an independent implementation) calls the runner over the Unix socket", async () => {
  const names = await unary(
    "ListSecretNames",
    ListSecretNamesRequestSchema,
    ListSecretNamesResponseSchema,
    create(ListSecretNamesRequestSchema, {}),
  );
  assert.deepEqual(names.names, ["BAR", "FOO"]);

  const req = create(
    RunSkillRequestSchema,
    skillRequest("// @secrets FOO\nconsole.log('got', Deno.env.get('FOO'))", { secretNames: ["FOO"] }),
  );
  const res = await unary("RunSkill", RunSkillRequestSchema, RunSkillResponseSchema, req);
  assert.equal(res.termination, Termination.EXITED);
  assert.equal(res.stdout, "got [REDACTED:FOO]\n");
  assert.equal(res.policy?.isolation, IS_ROOT ? "per-run-uid" : "shared-uid");

  await assert.rejects(
    unary("RunSkill", RunSkillRequestSchema, RunSkillResponseSchema, req),
    (err: grpc.ServiceError) => err.code === grpc.status.ALREADY_EXISTS,
  );
});

test("the socket is 0660 in a 0750 directory", () => {
  assert.equal(statSync(socketPath).mode & 0o777, 0o660);
  assert.equal(statSync(join(dir, "run")).mode & 0o777, 0o750);
});

test("only the gRPC protocol is served: a Connect-protocol POST is refused", async () => {
  const session = http2Connect("http://runner", { createConnection: () => netConnect(socketPath) });
  after(() => session.close());
  const status = await new Promise<number>((resolve, reject) => {
    const stream = session.request({
      ":method": "POST",
      ":path": "/oauth3.runner.v1.VaultRunnerService/ListSecretNames",
      "content-type": "application/json",
    });
    stream.on("response", (h) => resolve(Number(h[":status"])));
    stream.on("error", reject);
    stream.end("{}");
  });
  assert.equal(status, 415);
});

test("a live socket stops a second runner; a crashed runner's stale socket is replaced", async () => {
  await assert.rejects(startRunnerServer({ socketPath, routes: routesFor(deps), maxTimeoutSeconds: 60 }), /already serving/);
  // A real crash: a process listening on the path is SIGKILLed and leaves its socket file behind.
  const stalePath = join(dir, "stale", "runner.sock");
  mkdirSync(join(dir, "stale"), { mode: 0o750 });
  const crashed = spawn(process.execPath, [
    "-e",
    `require("net").createServer().listen(${JSON.stringify(stalePath)}, () => console.log("up"))`,
  ]);
  await once(crashed.stdout, "data");
  crashed.kill("SIGKILL");
  await once(crashed, "exit");
  assert.ok(lstatSync(stalePath).isSocket(), "the crash left a socket file");
  const second = await startRunnerServer({ socketPath: stalePath, routes: routesFor(deps), maxTimeoutSeconds: 60 });
  await second.close();

  const notSocket = join(dir, "file", "runner.sock");
  mkdirSync(join(dir, "file"), { mode: 0o750 });
  writeFileSync(notSocket, "x");
  await assert.rejects(startRunnerServer({ socketPath: notSocket, routes: routesFor(deps), maxTimeoutSeconds: 60 }), /not a socket/);
});

test("a caller that gives up (deadline) gets the skill killed, not left running", async () => {
  const req = create(
    RunSkillRequestSchema,
    skillRequest("console.log('sleeping'); await new Promise((r) => setTimeout(r, 20000))", { timeoutSeconds: 30 }),
  );
  const started = Date.now();
  await assert.rejects(
    unary("RunSkill", RunSkillRequestSchema, RunSkillResponseSchema, req, { deadline: Date.now() + 1000 }),
    (err: grpc.ServiceError) => err.code === grpc.status.DEADLINE_EXCEEDED,
  );
  for (let i = 0; i < 100 && deps.ledger.get(req.requestId)?.termination === undefined; i++) {
    await new Promise((r) => setTimeout(r, 50));
  }
  assert.equal(deps.ledger.get(req.requestId)?.termination, "cancelled");
  assert.ok(Date.now() - started < 8000, "killed long before its own 30 s timeout");
});
