import type { PausedPoolView } from "../../domain/pool-summary.js";
import type { Vm } from "../../domain/types.js";

/** The part of `GET /v1/host` that `banger top` and `banger host` show. */
export interface HostView {
  version: string;
  vmm: string;
  pid: number;
  rssBytes: number;
  uptimeS: number;
  memory?: { totalMib: number; availableMib?: number };
  pool: {
    taps?: { idle: number; size: number; total: number };
    disks?: { sets: Record<string, number>; bytes: number; maxBytes: number; capped: string[] };
    vms?: PausedPoolView;
  };
}

/** What the view shows: VMs by id, when each was last seen becoming running, and the host. */
export interface TopState {
  vms: Map<string, Vm>;
  /** ms since the epoch; a VM's uptime counts from here. */
  runningSince: Map<string, number>;
  host?: HostView;
  connected: boolean;
  /** Shown in the footer: a lost stream, a failed host fetch. */
  note?: string;
}

export function emptyState(): TopState {
  return { vms: new Map(), runningSince: new Map(), connected: false };
}

/** Builder and pool VMs are bangerd's own business (as in `vm ls`), unless one is left failed. */
const listed = (vm: Vm) => vm.role === undefined || vm.state === "failed";

function put(s: TopState, vm: Vm): void {
  const before = s.vms.get(vm.id);
  if (!listed(vm)) {
    s.vms.delete(vm.id);
    s.runningSince.delete(vm.id);
    return;
  }
  s.vms.set(vm.id, vm);
  if (vm.state !== "running") s.runningSince.delete(vm.id);
  // The row's last change is when it became running; later changes of a running row (an IP, a
  // port) must not reset the clock, so only a transition sets it.
  else if (before?.state !== "running" || !s.runningSince.has(vm.id)) s.runningSince.set(vm.id, Date.parse(vm.updatedAt));
}

/**
 * Applies one `GET /v1/events` message to the state; true when the host's pools may have
 * changed with it (a VM came or went), so the caller can refetch `GET /v1/host`.
 */
export function applyEvent(s: TopState, event: string, data: unknown): boolean {
  switch (event) {
    case "hello": {
      s.vms.clear();
      s.runningSince.clear();
      for (const vm of (data as { vms: Vm[] }).vms) put(s, vm);
      s.connected = true;
      s.note = undefined;
      return true;
    }
    case "vm": {
      const vm = (data as { vm: Vm }).vm;
      const before = s.vms.get(vm.id)?.state;
      put(s, vm);
      return before !== vm.state;
    }
    case "vm-removed":
      s.vms.delete((data as { id: string }).id);
      s.runningSince.delete((data as { id: string }).id);
      return true;
    case "images":
      return true;
    default:
      return false;
  }
}
