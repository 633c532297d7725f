import { randomUUID } from "node:crypto";
import { join } from "node:path";
import { BangerError } from "../domain/errors.js";
import { validateName } from "../domain/names.js";
import { artifactOf, type Image, type Vm } from "../domain/types.js";
import type { Vmm } from "../ports/vmm.js";
import type { AppConfig, AppDeps } from "./deps.js";
import { settleFailed, transition } from "./vm-transitions.js";
import { imageNotFound } from "./images.js";
import { Plan, type Stage } from "./plan.js";
import { bootStages, explainGuestFailure, tapStage, type BootContext, type BootDeps } from "./boot-stages.js";
import type { ClaimedMember, PreparedDisks } from "./deps.js";
import { vmFiles } from "./vm-files.js";
import { authorizedKeys, cloneRootfs, injectIdentity, makeWorkDisk } from "./vm-disks.js";
import { guestSecretFiles, newSecret, removeSecret, storeSecret } from "./vm-secret.js";
import { knownHostsLine } from "../domain/known-hosts.js";
import { leaseStage } from "./lease-stage.js";
import { checkAddress, type ForwardSpec } from "../domain/forwards.js";
import { forwardsStage, peersStage, resolvePeers } from "./vm-net.js";
import { chooseBootSource, snapshotDisks, type BootSource } from "./snapshot-source.js";
import { finishStages, natStage, restoreStages, type RestoreDeps } from "./restore-stages.js";
import { claimStage, claimedPeersStage } from "./pool-claim.js";
import { handleOf } from "./vm-boot.js";

/** Refused before anything is acquired: a bad port or a port given twice. */
function checkForwards(list: readonly ForwardSpec[]): ForwardSpec[] {
  const seen = new Set<string>();
  for (const f of list) {
    checkAddress(f.hostAddress, "publish address");
    const k = `${f.hostAddress}:${f.hostPort}`;
    if (seen.has(k)) throw new BangerError("BAD_REQUEST", `host port ${k} is forwarded twice`, { hint: "give each -p its own host port" });
    seen.add(k);
  }
  return [...list];
}

/** What a create touches; start, stop and rm take a subset of the same (lifecycle.ts). */
export type CreateDeps = BootDeps &
  RestoreDeps &
  Pick<AppDeps, "store" | "ops" | "vmm" | "diskPool" | "vmPool" | "disks" | "files" | "names" | "log" | "forwarder" | "snapshots"> & {
    config: Pick<
      AppConfig,
      | "vmm"
      | "subnet"
      | "vcpus"
      | "memoryMib"
      | "workDiskGib"
      | "opTimeoutMs"
      | "eventsKeepOps"
      | "vmsDir"
      | "secretsDir"
      | "sshTimeoutMs"
      | "serviceTimeoutMs"
      | "imagesDir"
    >;
  };

export interface CreateInput {
  image: string;
  name?: string;
  nat?: boolean;
  vcpus?: number;
  memoryMib?: number;
  workDiskGib?: number;
  /** Return once the guest is started, without waiting for SSH and services. */
  noWait?: boolean;
  /** Names of existing VMs this one may exchange traffic with, both ways (docs/security.md). */
  peers?: string[];
  /** Host ports relayed to the guest, kept until the VM is removed. */
  forwards?: ForwardSpec[];
  /** The API caller, recorded as the VM's owner. */
  owner?: { uid: number; name: string };
  /** The caller's public key, added to the guest's authorized_keys beside banger's. */
  sshPublicKey?: string;
  /** Boot even when the image has a usable snapshot. */
  cold?: boolean;
}

export function resolveImage(d: Pick<AppDeps, "store">, ref: string): Image {
  const image = d.store.getImage(ref);
  if (!image) throw imageNotFound(ref);
  // Pulled images are evicted least recently used first (app/image-pull.ts); a create is a use.
  d.store.touchImage(image.id);
  if (image.status === "broken") {
    throw new BangerError("IMAGE_BROKEN", `image ${image.name} is broken: ${image.statusDetail}`, {
      hint: "re-register it from its build output, or promote another build (`banger image promote`)",
    });
  }
  return image;
}

export async function createVm(d: CreateDeps, input: CreateInput, opts: { signal?: AbortSignal } = {}): Promise<Vm> {
  const cfg = d.config;
  if (input.name !== undefined) validateName(input.name, "VM");
  const image = resolveImage(d, input.image);
  const name = input.name ?? d.names.next((n) => d.store.nameTaken(n) || d.ops.current(n) !== undefined);
  if (d.store.nameTaken(name)) {
    throw new BangerError("VM_EXISTS", `a VM named ${name} already exists`, { hint: "pick another --name, or omit it for a generated one" });
  }
  const vmm = d.vmm(cfg.vmm); // resolves the binary now: a missing VMM fails before anything is acquired
  const peerIds = resolvePeers(d, input.peers ?? [], name);
  const forwards = checkForwards(input.forwards ?? []);
  // Held from before the row exists until the plan has settled, undo included.
  const ticket = d.ops.begin(name, "create", { signal: opts.signal, deadlineMs: cfg.opTimeoutMs });
  // A restore in the background would slow this boot down; the pool refills once the create is done.
  d.vmPool.interrupt();
  try {
    const attempt: Attempt = { path: "cold" };
    let noPool = false;
    let fallback: string | undefined;
    for (;;) {
      try {
        return await runCreate(d, input, { image, name, vmm, signal: ticket.signal, peerIds, forwards, noPool, fallback, attempt });
      } catch (e) {
        // A snapshot that passed the shallow check but would not restore (corrupted inside, a guest
        // without re-identity), or a paused member that would not wake: everything is undone by then,
        // so the same create restores afresh (after a pool member) or boots cold (after a restore).
        const err = e as BangerError;
        if (!(err instanceof BangerError) || !err.stage || !RESTORE_STAGES.has(err.stage) || ticket.signal.aborted || d.store.getVm(name)) throw e;
        if (attempt.path === "pool") {
          d.log.warn({ vm: name, stage: err.stage, err: err.message }, "paused pool member failed; restoring from the snapshot");
          noPool = true;
        } else if (attempt.path === "snapshot") {
          d.log.warn({ vm: name, stage: err.stage, err: err.message }, "restore from snapshot failed; booting cold");
          fallback = `restore from the snapshot failed at ${err.stage}: ${err.message}`;
        } else {
          throw e;
        }
      }
    }
  } finally {
    ticket.release();
    // After the create, never during it: a refill restores a guest and would steal CPU from this one's boot.
    d.vmPool.refill();
  }
}

/** Stages of a create from a snapshot (or a paused member) whose failure falls back to the next way up. */
const RESTORE_STAGES = new Set(["claim", "secret", "disks", "restore", "resume", "reidentify"]);

/** Which way the last try went: the fallback after a failure depends on it. */
interface Attempt {
  path: "pool" | "snapshot" | "cold";
}

interface CreateCtx {
  image: Image;
  name: string;
  vmm: Vmm;
  signal: AbortSignal;
  peerIds: string[];
  forwards: ForwardSpec[];
  /** Set when a restore failed and this is the cold retry: why. */
  fallback?: string;
  /** A claimed pool member failed: restore afresh instead. */
  noPool: boolean;
  attempt: Attempt;
}

async function runCreate(d: CreateDeps, input: CreateInput, c: CreateCtx): Promise<Vm> {
  const cfg = d.config;
  const { image, name, vmm } = c;
  const seed = artifactOf(image, "work_seed");
  const id = randomUUID();
  const now = new Date().toISOString();
  const draft: Vm = {
    id,
    name,
    imageId: image.id,
    imageName: image.name,
    state: "creating",
    vmm: vmm.kind,
    vcpus: input.vcpus ?? image.defaultVcpus ?? cfg.vcpus,
    memoryMib: input.memoryMib ?? image.defaultMemoryMib ?? cfg.memoryMib,
    workDiskGib: input.workDiskGib ?? image.defaultWorkDiskGib ?? cfg.workDiskGib,
    nat: input.nat ?? false,
    dir: join(cfg.vmsDir, id),
    workSeedFallback: !seed,
    createdAt: now,
    updatedAt: now,
    ...(input.owner ? { ownerUid: input.owner.uid, ownerName: input.owner.name } : {}),
  };
  const source: BootSource = c.fallback ? { kind: "cold", reason: c.fallback } : await chooseBootSource(d, image, draft, vmm, { cold: input.cold });
  const member =
    source.kind === "snapshot" && !c.noPool
      ? d.vmPool.take(image.id, { snapshotId: source.snap.record.id, vcpus: draft.vcpus, memoryMib: draft.memoryMib, workDiskGib: draft.workDiskGib })
      : undefined;
  c.attempt.path = member ? "pool" : source.kind;
  try {
    return await createFrom(d, input, c, { draft, source, member });
  } finally {
    member?.ticket.release();
  }
}

async function createFrom(d: CreateDeps, input: CreateInput, c: CreateCtx, from: { draft: Vm; source: BootSource; member?: ClaimedMember }): Promise<Vm> {
  const cfg = d.config;
  const { image, name, vmm } = c;
  const { source, member } = from;
  const seed = artifactOf(image, "work_seed");
  let vm: Vm = member ? member.vm : from.draft;
  const id = vm.id;
  if (!member) {
    try {
      d.store.insertVm(vm);
    } catch (e) {
      if (d.store.nameTaken(name)) throw new BangerError("VM_EXISTS", `a VM named ${name} already exists`, { hint: "pick another --name" });
      throw e;
    }
  }

  // A claimed member's row keeps its id and its fill's events; this plan records under the new name.
  const plan = new Plan(d.store, d.log, { id, name, vmm: vmm.kind }, "create", c.signal, cfg.eventsKeepOps);
  plan.path = member ? "pool" : source.kind;
  const patch = (p: Partial<Vm>) => {
    vm = d.store.updateVm(id, p);
  };
  const files = vmFiles(vm.dir);
  if (source.kind === "cold") patch({ bootSource: `cold: ${source.reason}` });
  let prepared: PreparedDisks | undefined;
  let secret: string | undefined;
  const boot: BootContext = { d, image, vmm, vm: () => vm, patch, noWait: input.noWait };
  const extras = { secret: () => secret, callerKey: input.sshPublicKey };

  const stages: Stage[] =
    member && source.kind === "snapshot"
      ? [
          claimStage({ ...boot, d }, plan, member, { name, nat: input.nat ?? false, owner: input.owner }),
          secretStage(),
          ...(input.nat ? [natStage(boot)] : []),
          ...(c.forwards.length > 0 ? [forwardsStage(d, () => vm, c.forwards)] : []),
          ...(c.peerIds.length > 0
            ? [
                claimedPeersStage(
                  d,
                  peersStage(d, () => vm, c.peerIds),
                ),
              ]
            : []),
          ...finishStages({ ...boot, d }, source.snaps, () => handleOf(vm, vmm)!, extras),
        ]
      : [
          leaseStage(d, plan, id, patch),
          ...(c.forwards.length > 0 ? [forwardsStage(d, () => vm, c.forwards)] : []),
          ...(c.peerIds.length > 0 ? [peersStage(d, () => vm, c.peerIds)] : []),
          tapStage(boot),
          ...(source.kind === "snapshot" ? [secretStage(), ...restoreStages({ ...boot, d }, source, extras)] : coldStages()),
        ];
  /** The service password of a clone: stored here, written into the guest by `reidentify`. */
  function secretStage(): Stage {
    return {
      name: "secret",
      run: async ({ onUndo }) => {
        secret = newSecret();
        onUndo("secret", () => removeSecret(d, vm));
        await storeSecret(d, vm, secret);
      },
    };
  }
  function coldStages(): Stage[] {
    return [
      {
        name: "rootfs",
        run: async ({ onUndo }) => {
          const removeDir = () => d.files.remove(vm.dir);
          prepared = d.diskPool.take(image, vm.workDiskGib);
          if (prepared) {
            await d.diskPool.claim(prepared, vm.dir); // the set's dir becomes the VM dir
            onUndo("vm-dir", removeDir);
            return "from warm pool";
          }
          await d.files.mkdir(vm.dir);
          onUndo("vm-dir", removeDir);
          await cloneRootfs(d, image, files.rootfs);
        },
      },
      {
        name: seed ? "work-disk" : "work-disk-fallback",
        run: async () => (prepared ? `${vm.workDiskGib} GiB from warm pool` : makeWorkDisk(d, image, files.work, vm.workDiskGib)),
      },
      {
        name: "inject",
        run: async ({ onUndo }) => {
          // The service password is this VM's alone: warm sets carry none, it is written here.
          const secret = newSecret();
          onUndo("secret", () => removeSecret(d, vm));
          await storeSecret(d, vm, secret);
          const guestFiles = guestSecretFiles(secret);
          let hostPublicKey: string;
          if (prepared) {
            hostPublicKey = prepared.hostPublicKey;
            // A warm set holds banger's key only; the creator's joins it here, in the same write.
            await d.disks.inject(files.rootfs, [...(input.sshPublicKey ? [await authorizedKeys(d, input.sshPublicKey)] : []), ...guestFiles]);
          } else {
            hostPublicKey = await injectIdentity(d, files.rootfs, guestFiles, input.sshPublicKey);
          }
          await d.files.writeText(files.knownHosts, `${knownHostsLine(vm.ip!, hostPublicKey)}\n`, 0o600);
          return prepared ? "host key and authorized_keys pre-injected (warm pool); service password written" : undefined;
        },
      },
      ...bootStages(boot),
    ];
  }

  try {
    await plan.run(stages, explainGuestFailure(d, vm.dir));
  } catch (e) {
    if (plan.undoFailures > 0) throw settleFailed(d, vm, e, "failed");
    throw e;
  } finally {
    // After the boot, not during it: a refill copies a rootfs and would steal CPU from the guest.
    d.diskPool.refill(image);
    if (source.kind === "snapshot") d.diskPool.refill(image, snapshotDisks(source.snap, source.artifacts));
  }
  plan.commit();
  vm = transition(d, vm, "running");
  const total = plan.timings.reduce((s, t) => s + t.durationMs, 0);
  d.log.info(
    { vm: name, stage: "total", ms: Math.round(total), stages: plan.timings.map((t) => `${t.stage}=${Math.round(t.durationMs)}ms`).join(" ") },
    "vm created",
  );
  return vm;
}
