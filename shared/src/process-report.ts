import { readdirSync, readFileSync, readlinkSync, statSync } from "node:fs";
import { dirname } from "node:path";

/**
 * What a process can say about itself for the split self-audit: ids, environment variable NAMES,
 * listening sockets (from /proc/net/{unix,tcp,tcp6}, matched against its own descriptors) and the
 * ownership and mode of its socket and socket directory. Linux only; elsewhere lists stay empty.
 */
export interface SocketFacts {
  path: string;
  dirUid: number;
  dirGid: number;
  dirMode: number;
  socketUid: number;
  socketGid: number;
  socketMode: number;
}

export interface ProcessFacts {
  pid: number;
  uid: number;
  gid: number;
  envNames: string[];
  listening: string[];
  pidNamespace: string;
  socket?: SocketFacts;
}

export function processFacts(env: NodeJS.ProcessEnv, socketPath?: string): ProcessFacts {
  return {
    pid: process.pid,
    uid: process.getuid?.() ?? -1,
    gid: process.getgid?.() ?? -1,
    envNames: Object.keys(env).sort(),
    listening: listeningSockets(),
    pidNamespace: safe(() => readlinkSync("/proc/self/ns/pid"), ""),
    ...(socketPath && { socket: socketFacts(socketPath) }),
  };
}

export function socketFacts(path: string): SocketFacts | undefined {
  try {
    const dir = statSync(dirname(path));
    const sock = statSync(path);
    return {
      path,
      dirUid: dir.uid,
      dirGid: dir.gid,
      dirMode: dir.mode & 0o7777,
      socketUid: sock.uid,
      socketGid: sock.gid,
      socketMode: sock.mode & 0o7777,
    };
  } catch {
    return undefined;
  }
}

function safe<T>(f: () => T, fallback: T): T {
  try {
    return f();
  } catch {
    return fallback;
  }
}

/** Socket inodes this process holds open. */
function ownSocketInodes(): Set<string> {
  const inodes = new Set<string>();
  for (const fd of safe(() => readdirSync("/proc/self/fd"), [] as string[])) {
    const m = /^socket:\[(\d+)\]$/.exec(safe(() => readlinkSync(`/proc/self/fd/${fd}`), ""));
    if (m) inodes.add(m[1]!);
  }
  return inodes;
}

function listeningSockets(): string[] {
  const mine = ownSocketInodes();
  const out: string[] = [];
  // /proc/net/unix: Num RefCount Protocol Flags Type St Inode Path; __SO_ACCEPTCON (0x10000) = listening.
  for (const line of safe(() => readFileSync("/proc/net/unix", "utf8"), "")
    .split("\n")
    .slice(1)) {
    const f = line.trim().split(/\s+/);
    if (f.length < 8 || !mine.has(f[6]!)) continue;
    if ((parseInt(f[3]!, 16) & 0x10000) !== 0) out.push(`unix:${f.slice(7).join(" ")}`);
  }
  // /proc/net/tcp{,6}: sl local_address rem_address st ... inode (field 9); st 0A = LISTEN.
  for (const file of ["/proc/net/tcp", "/proc/net/tcp6"]) {
    for (const line of safe(() => readFileSync(file, "utf8"), "")
      .split("\n")
      .slice(1)) {
      const f = line.trim().split(/\s+/);
      if (f.length < 10 || f[3] !== "0A" || !mine.has(f[9]!)) continue;
      out.push(`tcp:${decodeAddress(f[1]!)}`);
    }
  }
  return out.sort();
}

/** "0100007F:1F90" -> "127.0.0.1:8080"; IPv6 as 4 little-endian words. */
function decodeAddress(field: string): string {
  const [hex, portHex] = field.split(":") as [string, string];
  const port = parseInt(portHex, 16);
  if (hex.length === 8) return `${Buffer.from(hex, "hex").reverse().join(".")}:${port}`;
  const words: string[] = [];
  for (let i = 0; i < 32; i += 8) {
    const w = Buffer.from(hex.slice(i, i + 8), "hex")
      .reverse()
      .toString("hex");
    words.push(w.slice(0, 4), w.slice(4));
  }
  const v6 = words
    .map((w) => w.replace(/^0{1,3}/, ""))
    .join(":")
    .replace(/(^|:)0(:0)+(:|$)/, "::");
  return `[${v6}]:${port}`;
}
