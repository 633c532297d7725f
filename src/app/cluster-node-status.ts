import type { MicroVm, MicroVmCondition, MicroVmPhase, MicroVmStatus } from "../domain/microvm.js";
import type { LifecycleEvent, Vm } from "../domain/types.js";

/** What the agent knows about one MicroVM at a moment, from which its status is written. */
export interface Observed {
  phase: MicroVmPhase;
  node: string;
  vm?: Vm;
  stages: { name: string; ms: number }[];
  image?: { ready: boolean; reason: string; message: string };
  ready: { ready: boolean; reason: string; message: string };
  lastError?: string;
}

/** The stages of the VM's last create, as `vm show` lists them (ok ones, in order). */
export function createStages(events: LifecycleEvent[]): { name: string; ms: number }[] {
  const creates = events.filter((e) => e.op === "create");
  const last = Math.max(-1, ...creates.map((e) => e.opId));
  return creates.filter((e) => e.opId === last && e.outcome === "ok").map((e) => ({ name: e.stage, ms: Math.round(e.durationMs) }));
}

/** A condition, keeping the previous transition time while its status has not changed. */
function condition(prev: MicroVmCondition[] | undefined, type: string, c: { ready: boolean; reason: string; message: string }, now: string): MicroVmCondition {
  const status = c.ready ? "True" : "False";
  const old = prev?.find((p) => p.type === type);
  return { type, status, reason: c.reason, message: c.message, lastTransitionTime: old && old.status === status ? old.lastTransitionTime : now };
}

/** Kubernetes stores times at second precision; so does this, so a re-read compares equal. */
const nowSeconds = () => new Date().toISOString().replace(/\.\d+Z$/, "Z");

export function statusOf(mv: MicroVm, o: Observed, now = nowSeconds()): MicroVmStatus {
  const prev = mv.status.conditions;
  const conditions = [
    ...(o.image ? [condition(prev, "ImageReady", o.image, now)] : (prev?.filter((c) => c.type === "ImageReady") ?? [])),
    condition(prev, "Ready", o.ready, now),
  ];
  // Conditions of others (the controller's Scheduled) are kept as they are.
  const others = prev?.filter((c) => c.type !== "ImageReady" && c.type !== "Ready") ?? [];
  return {
    phase: o.phase,
    node: o.node,
    ...(o.vm?.ip ? { ip: o.vm.ip } : {}),
    ...(o.vm ? { vmName: o.vm.name } : {}),
    stages: o.stages,
    conditions: [...others, ...conditions],
    ...(o.lastError ? { lastError: o.lastError } : {}),
    ...(mv.generation !== undefined ? { observedGeneration: mv.generation } : {}),
    // The controller's record of the first Running (time to live); the agent carries it unchanged.
    ...(mv.status.runningSince ? { runningSince: mv.status.runningSince } : {}),
  };
}

/** Equal for the purpose of writing: the same fields and values, whatever the key order. */
export function sameStatus(a: MicroVmStatus, b: MicroVmStatus): boolean {
  const norm = (s: MicroVmStatus) =>
    JSON.stringify({
      phase: s.phase,
      node: s.node,
      ip: s.ip,
      vmName: s.vmName,
      stages: s.stages ?? [],
      conditions: (s.conditions ?? []).map((c) => [c.type, c.status, c.reason, c.message, c.lastTransitionTime]),
      lastError: s.lastError || undefined,
      observedGeneration: s.observedGeneration,
    });
  return norm(a) === norm(b);
}

/** What a VM that exists says about its MicroVM. */
export function observeVm(node: string, vm: Vm, stages: { name: string; ms: number }[]): Observed {
  if (vm.state === "running") {
    return {
      phase: "Running",
      node,
      vm,
      stages,
      image: { ready: true, reason: "Present", message: `image ${vm.imageName}` },
      ready: { ready: true, reason: "Running", message: `VM ${vm.name} is running` },
    };
  }
  if (vm.state === "creating" || vm.state === "starting") {
    return { phase: "Creating", node, vm, stages, ready: { ready: false, reason: "Creating", message: `VM ${vm.name} is ${vm.state}` } };
  }
  return {
    phase: "Failed",
    node,
    vm,
    stages,
    ready: { ready: false, reason: vm.state === "stopped" ? "VmStopped" : "VmFailed", message: `VM ${vm.name} is ${vm.state}` },
    lastError: vm.lastError ?? `VM ${vm.name} is ${vm.state}`,
  };
}

/** The VM's name on the node: namespace-name as a DNS label, with part of the uid when that is taken or too long. */
export function vmNameFor(mv: Pick<MicroVm, "namespace" | "name" | "uid">, taken: (name: string) => boolean): string {
  const clean = (s: string) =>
    s
      .toLowerCase()
      .replace(/[^a-z0-9-]+/g, "-")
      .replace(/-+/g, "-")
      .replace(/^-|-$/g, "");
  const base = clean(`${mv.namespace}-${mv.name}`) || "microvm";
  const tag = clean(mv.uid).replace(/-/g, "").slice(0, 8) || "x";
  if (base.length <= 63 && !taken(base)) return base;
  const short = `${base.slice(0, 63 - tag.length - 1).replace(/-$/, "")}-${tag}`;
  if (!taken(short)) return short;
  return `mvm-${clean(mv.uid)}`.slice(0, 63).replace(/-$/, "");
}
