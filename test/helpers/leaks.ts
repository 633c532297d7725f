import type { Netns } from "./netns.js";

/** What banger could have left behind inside a namespace: NAT set elements, non-pool TAPs, VMM processes. */
export async function hostLeftovers(ns: Netns): Promise<{ natElements: string[]; nonPoolTaps: string[]; vmmProcesses: string[] }> {
  const set = await ns.exec("nft", ["-j", "list", "set", "inet", "banger", "nat_guests"], { allowFailure: true });
  const natElements: string[] = [];
  if (set.code === 0) {
    for (const item of JSON.parse(set.stdout).nftables as Record<string, { elem?: unknown[] }>[]) {
      for (const e of item.set?.elem ?? []) natElements.push(String(e));
    }
  }
  const links = JSON.parse((await ns.exec("ip", ["-j", "link", "show"])).stdout) as { ifname: string }[];
  const nonPoolTaps = links.map((l) => l.ifname).filter((n) => n.startsWith("bt-"));
  const pids = (await ns.exec("ip", ["netns", "pids", ns.name], { allowFailure: true })).stdout.split(/\s+/).filter(Boolean);
  const vmmProcesses: string[] = [];
  for (const pid of pids) {
    const comm = (await ns.exec("cat", [`/proc/${pid}/comm`], { allowFailure: true })).stdout.trim();
    if (/qemu|firecracker/.test(comm)) vmmProcesses.push(`${pid} ${comm}`);
  }
  return { natElements, nonPoolTaps, vmmProcesses };
}

/** A TCP connect (plus an HTTP request) from inside the namespace succeeds. */
export async function tcpAnswers(ns: Netns, host: string, port: number): Promise<boolean> {
  const script = `const s=require("net").connect(${port},${JSON.stringify(host)});s.setTimeout(5000,()=>process.exit(2));s.on("connect",()=>{s.end();process.exit(0)});s.on("error",()=>process.exit(1));`;
  const r = await ns.exec(process.execPath, ["-e", script], { allowFailure: true, timeoutMs: 10_000 });
  return r.code === 0;
}
