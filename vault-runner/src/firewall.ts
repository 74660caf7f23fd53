import { execFileSync } from "node:child_process";

/**
 * Network rules for the skill uids (iptables owner match, IPv4 and IPv6): they may open TCP
 * connections to the runner's egress proxy on 127.0.0.1 and nothing else, so raw sockets
 * (Deno.connect, WebSocket, anything that ignores HTTP_PROXY) cannot reach any address. Needs
 * CAP_NET_ADMIN (root here). One chain per uid range, rebuilt at start, removed at shutdown.
 */
export interface SkillFirewall {
  remove(): void;
}

export function iptablesAvailable(): boolean {
  try {
    execFileSync("iptables", ["-w", "-L", "OUTPUT", "-n"], { stdio: "ignore", timeout: 10_000 });
    execFileSync("ip6tables", ["-w", "-L", "OUTPUT", "-n"], { stdio: "ignore", timeout: 10_000 });
    return true;
  } catch {
    return false;
  }
}

export function installSkillFirewall(uidBase: number, uidCount: number, proxyPort: number): SkillFirewall {
  const chain = `OAUTH3_SKILLS_${uidBase}`;
  const owner = ["-m", "owner", "--uid-owner", `${uidBase}-${uidBase + uidCount - 1}`];
  const tables = ["iptables", "ip6tables"] as const;
  const run = (bin: string, args: string[]) => execFileSync(bin, ["-w", ...args], { stdio: "ignore", timeout: 10_000 });
  const tryRun = (bin: string, args: string[]) => {
    try {
      run(bin, args);
      return true;
    } catch {
      return false;
    }
  };
  for (const bin of tables) {
    tryRun(bin, ["-N", chain]);
    run(bin, ["-F", chain]);
    if (bin === "iptables") run(bin, ["-A", chain, "-p", "tcp", "-d", "127.0.0.1", "--dport", String(proxyPort), "-j", "ACCEPT"]);
    run(bin, ["-A", chain, "-j", "REJECT"]);
    if (!tryRun(bin, ["-C", "OUTPUT", ...owner, "-j", chain])) run(bin, ["-I", "OUTPUT", ...owner, "-j", chain]);
  }
  return {
    remove() {
      for (const bin of tables) {
        while (tryRun(bin, ["-D", "OUTPUT", ...owner, "-j", chain]));
        tryRun(bin, ["-F", chain]);
        tryRun(bin, ["-X", chain]);
      }
    },
  };
}
