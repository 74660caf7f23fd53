/**
 * DB_PATH keeps the seed's meaning. The real gateway process (the launcher `npm start` runs) is
 * started with the seed's own value, `/data/proxy.db` style, and with what users already have at
 * such a path: an upstream SQLite database (made by the real sqlite3 library), an empty directory
 * (what the old gateway left behind), a stray file. Modes are read off the disk.
 */
import { after, describe, test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { resolveDbLocation } from "../gateway/src/store/db-location.ts";
import { RequestStore } from "../gateway/src/store/store.ts";
import { freePort, ROOT, Stack } from "./helpers/stack.ts";
import { tempDir } from "./helpers/tmp.ts";

const mode = (p: string) => statSync(p).mode & 0o777;
const data = (code: string) => `data:text/typescript,${encodeURIComponent(code)}`;

/** The gateway bundle's start-up alone, as `npm start` would run it, with DB_PATH set. */
function gatewayStart(dbPath: string): { status: number | null; stderr: string } {
  const dir = tempDir("oauth3-dbstart-");
  const r = spawnSync(process.execPath, ["--import", "tsx", join(ROOT, "gateway/src/main.ts")], {
    env: {
      PATH: process.env.PATH,
      DB_PATH: dbPath,
      PORT: "0",
      RUNNER_SOCKET: join(dir, "none.sock"),
      OPERATOR_SOCKET: join(dir, "op", "operator.sock"),
      LOG_LEVEL: "silent",
    },
    encoding: "utf8",
    timeout: 20_000,
  });
  return { status: r.status, stderr: r.stderr };
}

describe("DB_PATH", () => {
  test("the seed's /data/proxy.db: one LMDB file, its -lock and the gateway key beside it, all 0600; state survives a restart", async () => {
    const dir = tempDir("oauth3-seeddb-");
    const dataDir = join(dir, "data");
    const dbPath = join(dataDir, "proxy.db");
    const stack = new Stack({ dir, port: await freePort(), env: { DB_PATH: dbPath, RUNNER_SKILL_UID_BASE: "67000" } });
    after(() => stack.stop());
    await stack.start();
    const { status, json } = await stack.post({ skill_id: "seed", skill_url: data("console.log('seed db')") });
    assert.equal(status, 200, JSON.stringify(json));
    assert.equal(await stack.stop(), 0);
    assert.ok(statSync(dbPath).isFile(), "proxy.db is a file, not a directory");
    assert.deepEqual(readdirSync(dataDir).sort(), ["proxy.db", "proxy.db-gateway-key.pem", "proxy.db-lock"]);
    for (const f of readdirSync(dataDir)) assert.equal(mode(join(dataDir, f)), 0o600, f);
    assert.equal(mode(dataDir), 0o700, "the directory the gateway made");
    assert.match(stack.log(), /"db":"[^"]*proxy\.db \(file\)"/);

    await stack.start();
    const s = await stack.status(String(json.request_id));
    assert.equal(s.status, "pending", "the pending request survived in the file");
    assert.equal(stack.cli("approve", String(json.request_id)).code, 0);
    const final = await stack.waitFinal(String(json.request_id));
    assert.equal((final.result as { stdout: string }).stdout, "seed db\n");
  });

  test("the default (a new name without an extension) is a 0700 directory with 0600 files", async () => {
    const dir = tempDir("oauth3-dirdb-");
    const store = RequestStore.open(join(dir, "gateway"));
    await store.close();
    assert.equal(mode(join(dir, "gateway")), 0o700);
    for (const f of ["data.mdb", "lock.mdb"]) assert.equal(mode(join(dir, "gateway", f)), 0o600, f);
    assert.equal(resolveDbLocation(join(dir, "gateway")).signingKeyPath, join(dir, "gateway", "gateway-signing-key.pem"));
  });

  test("an existing path is used as what it is: a directory named proxy.db stays a directory", async () => {
    const dir = tempDir("oauth3-leftover-");
    const leftover = join(dir, "proxy.db");
    mkdirSync(leftover); // what the old gateway left at the seed's path
    const store = RequestStore.open(leftover);
    await store.close();
    assert.ok(statSync(leftover).isDirectory());
    assert.ok(existsSync(join(leftover, "data.mdb")));
    assert.equal(mode(leftover), 0o700);
    // and an existing LMDB file without an extension stays a file
    const file = join(dir, "state");
    const first = RequestStore.open(join(dir, "made.db"));
    await first.close();
    writeFileSync(file, readFileSync(join(dir, "made.db")));
    assert.equal(resolveDbLocation(file).form, "file");
  });

  const noSqlite =
    spawnSync("python3", ["-c", "import sqlite3"]).status !== 0 &&
    "needs python3 with its sqlite3 module to make a real SQLite file (apt-get install python3)";
  test("an upstream SQLite database is refused with what was found and what to do; nothing is touched", { skip: noSqlite }, () => {
    const dir = tempDir("oauth3-sqlite-");
    const dbPath = join(dir, "proxy.db");
    const py = spawnSync(
      "python3",
      [
        "-c",
        "import sqlite3,sys; c=sqlite3.connect(sys.argv[1]); c.execute('create table requests (id text primary key, status text)'); " +
          "c.execute(\"insert into requests values ('exec_0123456789abcdef','pending')\"); c.commit()",
        dbPath,
      ],
      { encoding: "utf8" },
    );
    assert.equal(py.status, 0, `python3's sqlite3 made the upstream database: ${py.stderr}`);
    const before = readFileSync(dbPath);
    const r = gatewayStart(dbPath);
    assert.equal(r.status, 1);
    assert.match(r.stderr, /DB_PATH=\S+proxy\.db holds a SQLite database \(upstream oauth3-proxy's state\)/);
    assert.match(r.stderr, /mv \S+proxy\.db \S+proxy\.db\.upstream/);
    assert.deepEqual(readFileSync(dbPath), before, "the SQLite file is unchanged");
    assert.deepEqual(readdirSync(dir), ["proxy.db"], "no lock or key file was made beside it");
  });

  test("a file that is not LMDB is refused; so is a path that is neither file nor directory", () => {
    const dir = tempDir("oauth3-stray-");
    const stray = join(dir, "notes.txt");
    writeFileSync(stray, "hello, this is not a database\n");
    const r = gatewayStart(stray);
    assert.equal(r.status, 1);
    assert.match(r.stderr, /is a file that is not an LMDB database \(it starts with 68656c6c6f2c2074\)/);
    assert.equal(readFileSync(stray, "utf8"), "hello, this is not a database\n");
    assert.throws(() => resolveDbLocation("/dev/null"), /neither a directory nor a regular file/);
  });
});
