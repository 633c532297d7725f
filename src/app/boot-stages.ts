import type { Image, Vm } from "../domain/types.js";
import type { Vmm, VmmHandle } from "../ports/vmm.js";
import type { AppDeps } from "./deps.js";
import type { Stage } from "./plan.js";
import { consoleTail, specOf, waitReady } from "./vm-support.js";

/** What create and start share: a VM record that stages update as they acquire things. */
export interface BootContext {
  d: AppDeps;
  image: Image;
  vmm: Vmm;
  vm(): Vm;
  patch(p: Partial<Vm>): void;
  noWait?: boolean;
}

/** Stages after which the guest has run, so its console explains a failure. */
const GUEST_STAGES = new Set(["start", "wait-ssh", "wait-services"]);

export function explainGuestFailure(d: AppDeps, dir: string) {
  return async (stage: string) => (GUEST_STAGES.has(stage) ? consoleTail(d, dir) : undefined);
}

export function tapStage(c: BootContext): Stage {
  return { name: "tap", run: async ({ onUndo }) => {
    const tap = await c.d.network.acquireTap(c.vm().id);
    const owner = c.vm().id;
    onUndo("tap", async () => { await c.d.network.releaseTap(tap, owner); c.patch({ tap: undefined }); });
    c.patch({ tap });
    return tap;
  } };
}

/** NAT (when asked), spawn, configure, start, then readiness unless noWait. */
export function bootStages(c: BootContext): Stage[] {
  const { d, vmm, image } = c;
  let handle: VmmHandle | undefined;
  const ready = (signal: AbortSignal) => waitReady(d, c.vm(), image, signal);
  const nat: Stage[] = c.vm().nat ? [{ name: "nat", run: async ({ onUndo }) => {
    const ip = c.vm().ip!;
    await d.network.enableNat(ip);
    onUndo("nat", () => d.network.disableNat(ip));
  } }] : [];
  const wait: Stage[] = c.noWait ? [] : [
    { name: "wait-ssh", run: async ({ signal }) => { await (await ready(signal)).ssh(); } },
    { name: "wait-services", run: async ({ signal }) => (await ready(signal)).services() },
  ];
  return [
    ...nat,
    { name: "spawn-vmm", run: async ({ onUndo, signal }) => {
      const h = await vmm.spawn(specOf(d, c.vm(), image), signal);
      handle = h;
      onUndo("vmm", async () => { await vmm.kill(h); c.patch({ pid: undefined, pidStart: undefined }); });
      c.patch({ pid: h.pid, pidStart: h.pidStart });
      return `${vmm.kind} pid ${h.pid}`;
    } },
    { name: "configure", run: async ({ signal }) => { await vmm.configure(handle!, specOf(d, c.vm(), image), signal); } },
    { name: "start", run: async ({ signal }) => { await vmm.start(handle!, signal); } },
    ...wait,
  ];
}
