import { knownHostsLine } from "../domain/known-hosts.js";
import type { VmmSnapshots } from "../ports/snapshots.js";
import type { VmmHandle } from "../ports/vmm.js";
import type { BootContext } from "./boot-stages.js";
import type { Stage } from "./plan.js";
import type { BootSource } from "./snapshot-source.js";
import { specOf } from "./vm-boot.js";
import { vmFiles } from "./vm-files.js";
import { waitReady } from "./vm-ready.js";
import { cloneKeys, reidentify, servicesStage, type CloneExtras, type CloneKeys, type RestoreDeps } from "./reidentify-stage.js";

export type { CloneExtras, RestoreDeps };

/**
 * A create from a golden snapshot, after the lease and the TAP: private copies of the snapshot's
 * disks, NAT, `restore` (a new VMM on the snapshot, guest paused), `resume`, then `reidentify`
 * over the guest channel (the clone still holds the golden IP, so the network cannot be trusted
 * to reach the right guest, so its NIC stays unplugged until then), and SSH over the VM's own IP
 * and new host key as the proof. `resume` comes before `reidentify` because re-identity is done by
 * the guest itself.
 */
export function restoreStages(
  c: BootContext & { d: RestoreDeps },
  source: Extract<BootSource, { kind: "snapshot" }>,
  extras: CloneExtras = { secret: () => undefined },
): Stage[] {
  let handle: VmmHandle | undefined;
  return [...acquireStages(c, source, (h) => (handle = h)), ...finishStages(c, source.snaps, () => handle!, extras)];
}

/** NAT for the VM's IP, undone with the plan. */
export function natStage(c: BootContext): Stage {
  return {
    name: "nat",
    run: async ({ onUndo }) => {
      const ip = c.vm().ip!;
      await c.d.network.enableNat(ip);
      onUndo("nat", () => c.d.network.disableNat(ip));
    },
  };
}

/**
 * The first half of a restore, up to a paused guest: the disks, NAT and `restore`. A paused-pool
 * member (app/vm-pool.ts) runs only this half ahead of time; `restored` gets the VMM's handle.
 */
export function acquireStages(
  c: BootContext & { d: RestoreDeps },
  source: Extract<BootSource, { kind: "snapshot" }>,
  restored: (h: VmmHandle) => void,
): Stage[] {
  const { d, vmm, image } = c;
  const { snap, artifacts, snaps } = source;
  const vm = () => c.vm();
  const files = () => vmFiles(vm().dir);
  return [
    {
      name: "disks",
      run: async ({ onUndo }) => {
        const removeDir = () => d.files.remove(vm().dir);
        const warm = d.diskPool.takeSnapshot(image, snap.record.id);
        if (warm) {
          await d.diskPool.claim(warm, vm().dir); // the set's dir becomes the VM dir
          onUndo("vm-dir", removeDir);
        } else {
          await d.files.mkdir(vm().dir);
          onUndo("vm-dir", removeDir);
          // cp --reflink=auto --sparse=always: near-free on a reflink filesystem, a sparse copy elsewhere.
          await Promise.all([d.files.copy(artifacts.rootfs, files().rootfs), d.files.copy(artifacts.work, files().work)]);
        }
        // Until re-identity, the clone answers with the golden host key.
        await d.files.writeText(files().knownHosts, `${knownHostsLine(vm().ip!, snap.hostPublicKey)}\n`, 0o600);
        return `private copies of snapshot ${snap.record.id}'s disks${warm ? " (warm pool)" : ""}`;
      },
    },
    ...(vm().nat ? [natStage(c)] : []),
    {
      name: "restore",
      run: async ({ onUndo, signal }) => {
        // The golden VM's argv: its MAC and kernel command line travel in the migration stream anyway.
        const spec = { ...specOf(d, vm(), image), bootArgs: snap.bootArgs, mac: snap.mac };
        const h = await snaps.restore(spec, artifacts, signal);
        restored(h);
        onUndo("vmm", async () => {
          await vmm.kill(h);
          c.patch({ pid: undefined, pidStart: undefined });
        });
        c.patch({ pid: h.pid, pidStart: h.pidStart, bootSource: `snapshot ${snap.record.id}` });
        // Unplugged until re-identity: the clone wakes up with the golden MAC and IP, which another VM may hold by now.
        await snaps.setLink?.(h, false, signal);
        return `${vmm.kind} pid ${h.pid} from snapshot ${snap.record.id}`;
      },
    },
  ];
}

/** The second half: let the paused guest run, re-identify it, then readiness over its own IP. */
export function finishStages(c: BootContext & { d: RestoreDeps }, snaps: VmmSnapshots, handle: () => VmmHandle, extras: CloneExtras): Stage[] {
  const { d, image } = c;
  const vm = () => c.vm();
  let keys: CloneKeys | undefined;
  return [
    {
      name: "resume",
      run: async ({ signal }) => {
        // ssh-keygen for the clone's host key runs while the guest wakes up.
        keys = cloneKeys(d, extras.callerKey);
        await snaps.resume(handle(), signal);
      },
    },
    {
      name: "reidentify",
      run: async ({ signal }) => {
        const said = await reidentify(d, vm(), extras, keys ?? cloneKeys(d, extras.callerKey), signal);
        await snaps.setLink?.(handle(), true, signal);
        return said;
      },
    },
    // wait-ssh's login restarts the services; without it (--no-wait), a session of their own does.
    ...(c.noWait
      ? [servicesStage(d, vm)]
      : [
          { name: "wait-ssh", run: async ({ signal }) => (await waitReady(d, vm(), image, signal, { restored: true })).ssh() } satisfies Stage,
          // A restored clone's services ran before its snapshot: polled, as its SSH is (vm-ready-push.ts).
          { name: "wait-services", run: async ({ signal }) => (await waitReady(d, vm(), image, signal, { restored: true })).services() } satisfies Stage,
        ]),
  ];
}
