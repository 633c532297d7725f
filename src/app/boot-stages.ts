import type { Image, Vm } from "../domain/types.js";
import type { Vmm, VmmHandle, VmmSpec } from "../ports/vmm.js";
import type { AppConfig, AppDeps } from "./deps.js";
import type { Stage } from "./plan.js";
import { specOf } from "./vm-boot.js";
import { consoleTail, waitReady } from "./vm-ready.js";
import { hasPeers, syncPeers } from "./vm-net.js";

/** What booting a VM touches: shared by create and start. */
export type BootDeps = Pick<AppDeps, "network" | "store" | "host" | "keys" | "guest" | "console" | "files" | "channel" | "log"> & {
  config: Pick<AppConfig, "subnet" | "sshTimeoutMs" | "serviceTimeoutMs" | "secretsDir" | "readyPush">;
};

/** What create and start share: a VM record that stages update as they acquire things. */
export interface BootContext {
  d: BootDeps;
  image: Image;
  vmm: Vmm;
  vm(): Vm;
  patch(p: Partial<Vm>): void;
  noWait?: boolean;
}

/** Stages after which the guest has run, so its console explains a failure. */
const GUEST_STAGES = new Set(["start", "wait-ssh", "wait-services"]);

export function explainGuestFailure(d: Pick<AppDeps, "console">, dir: string) {
  return async (stage: string) => (GUEST_STAGES.has(stage) ? consoleTail(d, dir) : undefined);
}

export function tapStage(c: BootContext): Stage {
  return {
    name: "tap",
    run: async ({ onUndo }) => {
      const tap = await c.d.network.acquireTap(c.vm().id);
      const owner = c.vm().id;
      const peered = hasPeers(c.d, owner);
      onUndo("tap", async () => {
        // Unpaired before the device can go back to the pool for another VM.
        if (peered) await syncPeers(c.d, owner);
        await c.d.network.releaseTap(tap, owner);
        c.patch({ tap: undefined });
      });
      c.patch({ tap });
      // Every TAP is an isolated port; a VM with peers gets its pairs now that it has a device.
      if (peered) await syncPeers(c.d);
      return peered ? `${tap}, peered` : tap;
    },
  };
}

/** NAT (when asked), spawn, configure, start, then readiness unless noWait. */
export function bootStages(c: BootContext): Stage[] {
  const { d, vmm, image } = c;
  let handle: VmmHandle | undefined;
  // Built once at spawn: configure must describe the same VM the process was started for.
  let spec: VmmSpec | undefined;
  const ready = (signal: AbortSignal) => waitReady(d, c.vm(), image, signal);
  const nat: Stage[] = c.vm().nat
    ? [
        {
          name: "nat",
          run: async ({ onUndo }) => {
            const ip = c.vm().ip!;
            await d.network.enableNat(ip);
            onUndo("nat", () => d.network.disableNat(ip));
          },
        },
      ]
    : [];
  const wait: Stage[] = c.noWait
    ? []
    : [
        {
          name: "wait-ssh",
          run: async ({ signal }) => (await ready(signal)).ssh(),
        },
        { name: "wait-services", run: async ({ signal }) => (await ready(signal)).services() },
      ];
  return [
    ...nat,
    {
      name: "spawn-vmm",
      run: async ({ onUndo, signal }) => {
        spec = specOf(d, c.vm(), image);
        const h = await vmm.spawn(spec, signal);
        handle = h;
        onUndo("vmm", async () => {
          await vmm.kill(h);
          c.patch({ pid: undefined, pidStart: undefined });
        });
        c.patch({ pid: h.pid, pidStart: h.pidStart });
        return `${vmm.kind} pid ${h.pid}`;
      },
    },
    {
      name: "configure",
      run: async ({ signal }) => {
        await vmm.configure(handle!, spec!, signal);
      },
    },
    {
      name: "start",
      run: async ({ signal }) => {
        await vmm.start(handle!, signal);
      },
    },
    ...wait,
  ];
}
