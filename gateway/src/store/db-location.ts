/**
 * Where DB_PATH puts the gateway's state. Upstream's DB_PATH named a SQLite file (`/data/proxy.db`);
 * ours keeps that meaning:
 *  - a path that exists is used as what it is (stat, not its name): a directory holds LMDB's
 *    data.mdb and lock.mdb; a file is the LMDB data file itself, its lock file beside it (`-lock`);
 *  - a new path whose last part has an extension (`proxy.db`) becomes such a file; any other new
 *    path (the default `./data/gateway`) a directory;
 *  - a SQLite database (upstream's) or any other file that is not LMDB is refused, saying what was
 *    found and what to do; nothing is created or changed then.
 * Every file is 0600 and a directory the gateway makes is 0700, whatever LMDB or the umask would do.
 */
import { chmodSync, closeSync, existsSync, mkdirSync, openSync, readSync, statSync } from "node:fs";
import { basename, dirname, extname, join } from "node:path";

export interface DbLocation {
  form: "directory" | "file";
  /** What lmdb's open() gets as `path`. */
  lmdbPath: string;
  noSubdir: boolean;
  /** The gateway's Ed25519 key (checkpoints, attestation countersignature). */
  signingKeyPath: string;
  /** The files the gateway keeps its state in (made 0600 before LMDB opens them). */
  files: string[];
}

export class DbPathError extends Error {}

const SQLITE_MAGIC = Buffer.from("SQLite format 3\0", "latin1");
/**
 * MDB_MAGIC (0xBEEFC0DE), little-endian, right after the page header of LMDB's first meta page:
 * 16 bytes in LMDB 0.9, 24 in the 0.9.9x fork lmdb-js builds (checked on the files it writes).
 */
const LMDB_MAGIC = Buffer.from([0xde, 0xc0, 0xef, 0xbe]);
const isLmdb = (head: Buffer) => [16, 24].some((at) => head.subarray(at, at + 4).equals(LMDB_MAGIC));

function firstBytes(path: string, n: number): Buffer {
  const fd = openSync(path, "r");
  try {
    const buf = Buffer.alloc(n);
    return buf.subarray(0, readSync(fd, buf, 0, n, 0));
  } finally {
    closeSync(fd);
  }
}

function describe(path: string): "missing" | "directory" | "file" | "other" {
  try {
    const st = statSync(path);
    return st.isDirectory() ? "directory" : st.isFile() ? "file" : "other";
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return "missing";
    throw new DbPathError(`DB_PATH=${path}: cannot stat it (${(err as Error).message})`);
  }
}

/** Decides the form without creating anything; refuses what it must not open. */
export function resolveDbLocation(path: string): DbLocation {
  const kind = describe(path);
  if (kind === "other") throw new DbPathError(`DB_PATH=${path} exists but is neither a directory nor a regular file`);
  const form = kind === "directory" || (kind === "missing" && extname(basename(path)) === "") ? "directory" : "file";
  if (kind === "file") {
    const head = firstBytes(path, 28);
    if (head.subarray(0, 16).equals(SQLITE_MAGIC)) {
      throw new DbPathError(
        `DB_PATH=${path} holds a SQLite database (upstream oauth3-proxy's state). This gateway keeps its state in LMDB ` +
          "and does not read upstream's (its pending requests could never resume there anyway). Keep it elsewhere, e.g. " +
          `\`mv ${path} ${path}.upstream\`, then start again: a fresh LMDB file is made at ${path}; or set DB_PATH to another path.`,
      );
    }
    if (head.length > 0 && !isLmdb(head)) {
      throw new DbPathError(
        `DB_PATH=${path} is a file that is not an LMDB database (it starts with ${head.subarray(0, 8).toString("hex")}). ` +
          "Point DB_PATH at a new path (a name with an extension becomes a file, any other name a directory) or move the file away.",
      );
    }
  }
  if (form === "directory") {
    return {
      form,
      lmdbPath: path,
      noSubdir: false,
      signingKeyPath: join(path, "gateway-signing-key.pem"),
      files: [join(path, "data.mdb"), join(path, "lock.mdb")],
    };
  }
  return { form, lmdbPath: path, noSubdir: true, signingKeyPath: `${path}-gateway-key.pem`, files: [path, `${path}-lock`] };
}

/** Makes the directories and empty files (0700 / 0600) so that LMDB never makes them readable to others. */
export function prepareDbLocation(loc: DbLocation): void {
  const dir = loc.form === "directory" ? loc.lmdbPath : dirname(loc.lmdbPath);
  if (!existsSync(dir)) mkdirSync(dir, { recursive: true, mode: 0o700 });
  if (loc.form === "directory") chmodPrivate(dir, 0o700);
  for (const file of loc.files) {
    closeSync(openSync(file, "a", 0o600));
    chmodPrivate(file, 0o600);
  }
}

function chmodPrivate(path: string, mode: number): void {
  try {
    chmodSync(path, mode);
  } catch (err) {
    throw new DbPathError(`DB_PATH: cannot make ${path} private (mode ${mode.toString(8)}): ${(err as Error).message}`);
  }
}
