import type { AppDeps } from "./deps.js";

export interface NodeInfo {
  vcpus: { total: number; allocated: number };
  memory: { totalMib: number; availableMib?: number; allocatedMib: number };
  disk: { freeMib?: number };
  /** Ready members of the warm pools: TAPs, disk sets and paused VMs per image name. */
  pools: { taps: number; diskSets: Record<string, number>; pausedVms: Record<string, number> };
  /** Images held: name, id, aliases, and the content digest where the image store recorded one. */
  images: { name: string; id: string; aliases: string[]; digest?: string }[];
  vms: { total: number; running: number; creating: number };
}

/** What a VM takes from the host while it exists: stopped VMs keep their disks but neither CPU nor memory. */
const HOLDS = new Set(["creating", "starting", "running", "stopping"]);

/**
 * `GET /v1/node`: what this host can still take, for a scheduler or an operator looking at a fleet.
 * Read from the store and the pools' counters; nothing here runs a host command.
 */
export function nodeInfo(d: Pick<AppDeps, "store" | "host" | "config" | "diskPool" | "vmPool" | "network">): NodeInfo {
  const vms = d.store.listVms().filter((v) => v.role !== "builder");
  const holding = vms.filter((v) => HOLDS.has(v.state));
  const machine = d.host.machine?.() ?? { cpus: 0, memTotalMib: 0 };
  const imageName = (id: string) => d.store.getImageById(id)?.name ?? id;
  const byName = (counts: Record<string, number>) => Object.fromEntries(Object.entries(counts).map(([id, n]) => [imageName(id), n]));
  const available = d.host.memAvailableMib();
  const free = d.host.diskFreeMib?.(d.config.stateDir);
  return {
    vcpus: { total: machine.cpus, allocated: holding.reduce((n, v) => n + v.vcpus, 0) },
    memory: {
      totalMib: machine.memTotalMib,
      ...(available !== undefined ? { availableMib: available } : {}),
      allocatedMib: holding.reduce((n, v) => n + v.memoryMib, 0),
    },
    disk: free !== undefined ? { freeMib: free } : {},
    pools: { taps: d.network.poolStats().idle, diskSets: byName(d.diskPool.stats()), pausedVms: byName(d.vmPool.stats().members) },
    images: d.store.listImages().map((img) => {
      const digest = (img as { digest?: string }).digest;
      return { name: img.name, id: img.id, aliases: img.aliases, ...(digest ? { digest } : {}) };
    }),
    vms: {
      total: vms.filter((v) => v.role !== "pool").length,
      running: vms.filter((v) => v.role !== "pool" && v.state === "running").length,
      creating: vms.filter((v) => v.state === "creating").length,
    },
  };
}
