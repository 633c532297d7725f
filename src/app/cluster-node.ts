import type { Logger } from "pino";
import { BangerError, asBangerError } from "../domain/errors.js";
import { externalIdOf, type MicroVm } from "../domain/microvm.js";
import { arePeers } from "../domain/microvm-spec.js";
import type { Image, LifecycleEvent } from "../domain/types.js";
import type { ClusterEngine, NodeCapacity } from "../ports/cluster.js";
import { createStages, observeVm, sameStatus, statusOf, vmNameFor, type Observed } from "./cluster-node-status.js";
import { CreateSlots } from "./create-slots.js";
import type { ExternalVms } from "./external-vms.js";

/**
 * Makes an image present by name or digest, pulling it when missing (the image store's
 * `ensureImage`); `onStage` reports each pull stage as it ends.
 */
export type EnsureImage = (ref: string, opts: { signal: AbortSignal; onStage?: (s: { name: string; ms: number }) => void }) => Promise<Image>;

export interface ClusterNodeDeps {
  engine: Pick<ClusterEngine, "watchAssigned" | "report" | "release" | "registerNode">;
  external: Pick<ExternalVms, "ensure" | "remove" | "list" | "get" | "creating" | "peer">;
  ensureImage: EnsureImage;
  events(vmId: string): LifecycleEvent[];
  nameTaken(name: string): boolean;
  capacity(): NodeCapacity;
  log: Logger;
}

export interface ClusterNodeConfig {
  node: string;
  /** Running once SSH answers (a create that waits), else once the VMM started. */
  waitSsh: boolean;
  resyncMs: number;
  /** Creates run at once on this node (cluster.max_parallel_creates, resolved: at least 1). */
  maxParallelCreates: number;
}

const PREFIX = "k8s:";
const BACKOFF_MIN_MS = 5_000;
const BACKOFF_MAX_MS = 300_000;

/**
 * bangerd's node agent (docs/scale-out.md "Node agent"): converges the VMs on this host to the
 * MicroVMs bound to it. Work is serialised per MicroVM uid and coalesced (a burst of events runs
 * one pass after the current one); the VM is keyed by `k8s:<uid>` in ExternalVms, so duplicated,
 * replayed or reordered events and restarts never make a second VM.
 */
export class ClusterNode {
  private desired = new Map<string, MicroVm>();
  private synced = false;
  private readonly running = new Set<string>();
  private readonly again = new Set<string>();
  private readonly failures = new Map<string, { until: number; attempts: number }>();
  private readonly pulls = new Map<string, { name: string; ms: number }[]>();
  private readonly idle = new Set<() => void>();
  private registered = false;
  private readonly slots: CreateSlots;
  /** MicroVMs waiting for a create slot, by uid: aborting one takes it out of the queue. */
  private readonly queued = new Map<string, AbortController>();

  constructor(
    private readonly d: ClusterNodeDeps,
    private readonly cfg: ClusterNodeConfig,
  ) {
    this.slots = new CreateSlots(cfg.maxParallelCreates);
  }

  /** Registers the node (retried until it works) and follows the assigned set until `signal` aborts. */
  async run(signal: AbortSignal): Promise<void> {
    const timer = setInterval(() => {
      void this.register();
      this.resync();
    }, this.cfg.resyncMs);
    signal.addEventListener(
      "abort",
      () => {
        clearInterval(timer);
        for (const q of this.queued.values()) q.abort();
      },
      { once: true },
    );
    await this.register();
    await this.d.engine.watchAssigned(this.cfg.node, (set) => this.onAssigned(set), signal);
  }

  /** Node registration: label, capacity, images. Failures are logged; the resync tries again. */
  async register(): Promise<boolean> {
    try {
      await this.d.engine.registerNode(this.cfg.node, this.d.capacity());
      if (!this.registered) this.d.log.info({ stage: "cluster-register", node: this.cfg.node }, "node registered");
      this.registered = true;
      return true;
    } catch (e) {
      this.d.log.warn({ stage: "cluster-register", node: this.cfg.node, err: (e as Error).message }, "node registration failed; retrying at the next resync");
      return false;
    }
  }

  get status(): { node: string; synced: boolean; registered: boolean; assigned: number; failing: number; creating: number; queued: number } {
    return {
      node: this.cfg.node,
      synced: this.synced,
      registered: this.registered,
      assigned: this.desired.size,
      failing: this.failures.size,
      creating: this.slots.holders,
      queued: this.slots.waiting,
    };
  }

  /** The engine's full desired set. Every uid in it, and every k8s VM here, gets a pass. */
  onAssigned(set: MicroVm[]): void {
    this.desired = new Map(set.map((mv) => [mv.uid, mv]));
    this.synced = true;
    this.resync();
  }

  /** A pass for every MicroVM assigned here and every VM of ours (orphans included). */
  resync(): void {
    if (!this.synced) return;
    const uids = new Set(this.desired.keys());
    for (const vm of this.d.external.list(PREFIX)) uids.add(vm.externalId!.slice(PREFIX.length));
    for (const uid of uids) this.schedule(uid);
  }

  /** Resolves once no pass is running or queued (tests, shutdown). */
  settled(): Promise<void> {
    if (this.running.size === 0) return Promise.resolve();
    return new Promise((resolve) => this.idle.add(resolve));
  }

  private schedule(uid: string): void {
    if (this.running.has(uid)) {
      this.again.add(uid);
      // A create in flight for a MicroVM now going away is cancelled at once, not after it finishes.
      const mv = this.desired.get(uid);
      const ext = `${PREFIX}${uid}`;
      if (!mv || mv.deleting) {
        this.queued.get(uid)?.abort();
        if (this.d.external.creating(ext)) void this.d.external.remove(ext).catch(() => undefined);
      }
      return;
    }
    this.running.add(uid);
    void (async () => {
      try {
        do {
          this.again.delete(uid);
          await this.converge(uid).catch((e: unknown) =>
            this.d.log.error({ stage: "cluster-converge", microvm: uid, err: (e as Error).message }, "converge failed; retrying at the next resync"),
          );
        } while (this.again.has(uid));
      } finally {
        this.running.delete(uid);
        if (this.running.size === 0) {
          const waiting = [...this.idle];
          this.idle.clear();
          for (const f of waiting) f();
        }
      }
    })();
  }

  private async converge(uid: string): Promise<void> {
    const mv = this.desired.get(uid);
    const ext = externalIdOf({ uid });
    if (!mv || mv.deleting) {
      const vm = this.d.external.get(ext);
      if (vm || this.d.external.creating(ext)) {
        if (mv)
          await this.report(mv, {
            phase: "Deleting",
            node: this.cfg.node,
            vm,
            stages: mv.status.stages ?? [],
            ready: { ready: false, reason: "Deleting", message: "the MicroVM is being deleted" },
          });
        const { removed } = await this.d.external.remove(ext);
        this.d.log.info({ stage: "cluster-remove", vm: removed, microvm: uid, why: mv ? "deleting" : "pod or MicroVM gone" }, "VM removed");
      }
      this.failures.delete(uid);
      this.pulls.delete(uid);
      if (mv) await this.d.engine.release(mv);
      return;
    }
    const existing = this.d.external.get(ext);
    if (existing && !this.d.external.creating(ext)) {
      this.failures.delete(uid);
      await this.peer(mv, ext);
      await this.report(mv, observeVm(this.cfg.node, existing, this.stagesOf(uid, mv, existing.id)));
      return;
    }
    const failed = this.failures.get(uid);
    if (failed && failed.until > Date.now()) return;
    await this.create(mv, ext);
  }

  /**
   * The local VM names of `mv`'s peers (by either one's spec) whose VMs exist on this node. A peer
   * still being created is left out: its own pass pairs them once it exists.
   */
  private localPeers(mv: MicroVm): string[] {
    const names: string[] = [];
    for (const o of this.peerMicroVms(mv)) {
      const ext = externalIdOf(o);
      const vm = this.d.external.get(ext);
      if (vm && vm.state !== "deleting" && !this.d.external.creating(ext)) names.push(vm.name);
    }
    return names.sort();
  }

  private peerMicroVms(mv: MicroVm): MicroVm[] {
    return [...this.desired.values()].filter((o) => o.uid !== mv.uid && !o.deleting && o.namespace === mv.namespace && arePeers(mv, o));
  }

  /** Pairs an existing VM with peers that arrived after it (either order of creation ends paired). */
  private async peer(mv: MicroVm, ext: string): Promise<void> {
    const names = this.localPeers(mv);
    if (names.length === 0) return;
    try {
      const added = await this.d.external.peer(ext, names);
      if (added.length > 0) this.d.log.info({ stage: "cluster-peer", microvm: `${mv.namespace}/${mv.name}`, peers: added }, "VM peered");
    } catch (e) {
      // VM_BUSY (another operation on it) or a peer removed meanwhile: the next pass tries again.
      this.d.log.warn({ stage: "cluster-peer", microvm: `${mv.namespace}/${mv.name}`, err: (e as Error).message }, "peering failed; retrying at the next pass");
    }
  }

  private stagesOf(uid: string, mv: MicroVm, vmId: string): { name: string; ms: number }[] {
    const pulls = this.pulls.get(uid) ?? mv.status.stages?.filter((s) => s.name.startsWith("pull")) ?? [];
    return [...pulls, ...createStages(this.d.events(vmId))];
  }

  private async create(mv: MicroVm, ext: string): Promise<void> {
    const node = this.cfg.node;
    const log = this.d.log.child({ microvm: `${mv.namespace}/${mv.name}`, uid: mv.uid });
    const pulls: { name: string; ms: number }[] = [];
    this.pulls.set(mv.uid, pulls);
    // Pulling is bounded by the image store's own timeouts; this signal ends it when the agent stops caring.
    const abort = new AbortController();
    let image: Image;
    try {
      image = await this.d.ensureImage(mv.spec.image, {
        signal: abort.signal,
        onStage: (s) => {
          pulls.push({ name: `pull-${s.name}`, ms: Math.round(s.ms) });
          void this.report(mv, { phase: "Pulling", node, stages: [...pulls], ready: { ready: false, reason: "Pulling", message: `pulling ${mv.spec.image}` } });
        },
      });
    } catch (e) {
      const err = asBangerError(e);
      const reason = err.code === "IMAGE_NOT_FOUND" ? "ImageNotFound" : "PullFailed";
      this.fail(mv.uid);
      log.warn({ stage: "cluster-image", code: err.code, err: err.message }, "image not ready");
      await this.report(mv, {
        phase: "Failed",
        node,
        stages: pulls,
        image: { ready: false, reason, message: err.message },
        ready: { ready: false, reason, message: err.message },
        lastError: `${err.message}${err.hint ? ` (${err.hint})` : ""}`,
      });
      return;
    }
    const release = await this.createSlot(mv, pulls, image);
    if (!release) return;
    try {
      // The latest object: while this one queued, the watch may have brought a newer status.
      await this.createVm(this.desired.get(mv.uid) ?? mv, ext, pulls, image);
    } finally {
      release();
    }
  }

  /**
   * A create slot, waiting in line (status Placed, Ready=False Queued) when all are taken. Undefined
   * when the MicroVM went away or the agent stopped meanwhile: the next pass decides what to do.
   */
  private async createSlot(mv: MicroVm, pulls: { name: string; ms: number }[], image: Image): Promise<(() => void) | undefined> {
    let release = this.slots.tryAcquire();
    if (!release) {
      const limit = this.slots.limit;
      await this.report(mv, {
        phase: "Placed",
        node: this.cfg.node,
        stages: pulls,
        image: { ready: true, reason: "Present", message: `image ${image.name}` },
        ready: {
          ready: false,
          reason: "Queued",
          message: `waiting for a create slot: ${this.cfg.node} runs ${limit} create${limit === 1 ? "" : "s"} at once (cluster.max_parallel_creates)`,
        },
      });
      const wait = new AbortController();
      this.queued.set(mv.uid, wait);
      try {
        release = await this.slots.acquire(wait.signal);
      } catch {
        this.d.log.info({ stage: "cluster-queue", microvm: `${mv.namespace}/${mv.name}` }, "left the create queue");
        return undefined;
      } finally {
        this.queued.delete(mv.uid);
      }
    }
    const now = this.desired.get(mv.uid);
    if (!now || now.deleting) {
      release();
      return undefined;
    }
    return release;
  }

  private async createVm(mv: MicroVm, ext: string, pulls: { name: string; ms: number }[], image: Image): Promise<void> {
    const node = this.cfg.node;
    const log = this.d.log.child({ microvm: `${mv.namespace}/${mv.name}`, uid: mv.uid });
    const name = vmNameFor(mv, (n) => this.d.nameTaken(n));
    await this.report(mv, {
      phase: "Creating",
      node,
      stages: pulls,
      image: { ready: true, reason: "Present", message: `image ${image.name}` },
      ready: { ready: false, reason: "Creating", message: `creating VM ${name}` },
    });
    try {
      const { vm } = await this.d.external.ensure(
        ext,
        {
          image: mv.spec.image,
          vcpus: mv.spec.vcpus,
          memoryMib: mv.spec.memoryMib,
          nat: mv.spec.nat ?? false,
          forwards: forwardsOf(mv),
          peers: this.localPeers(mv),
        },
        { name, noWait: !this.cfg.waitSsh, owner: { uid: 0, name: "k8s" } },
      );
      this.failures.delete(mv.uid);
      log.info({ stage: "cluster-create", vm: vm.name }, "VM created for MicroVM");
      await this.report(mv, observeVm(node, vm, this.stagesOf(mv.uid, mv, vm.id)));
      // A peer whose create ran beside this one left this VM out; its next pass pairs them.
      for (const o of this.peerMicroVms(mv)) this.schedule(o.uid);
    } catch (e) {
      const err = asBangerError(e);
      this.fail(mv.uid);
      log.warn({ stage: "cluster-create", vm: name, code: err.code, err: err.message }, "create failed");
      await this.report(mv, {
        phase: "Failed",
        node,
        stages: pulls,
        image: { ready: true, reason: "Present", message: `image ${image.name}` },
        ready: { ready: false, reason: err.code === "EXTERNAL_ID_CONFLICT" ? "SpecChanged" : "CreateFailed", message: err.message },
        lastError: `${err.stage ? `${err.stage}: ` : ""}${err.message}`,
      });
    }
  }

  private fail(uid: string): void {
    const attempts = (this.failures.get(uid)?.attempts ?? 0) + 1;
    this.failures.set(uid, { attempts, until: Date.now() + Math.min(BACKOFF_MIN_MS * 2 ** (attempts - 1), BACKOFF_MAX_MS) });
  }

  /** Writes the status unless the MicroVM already says the same; a failed write is logged, not fatal. */
  private async report(mv: MicroVm, o: Observed): Promise<void> {
    const status = statusOf(mv, o);
    if (sameStatus(status, mv.status)) return;
    try {
      await this.d.engine.report(mv, status);
      // What the next pass compares against until the watch brings the object back.
      mv.status = status;
    } catch (e) {
      this.d.log.warn({ stage: "cluster-status", microvm: `${mv.namespace}/${mv.name}`, err: (e as Error).message }, "status write failed");
    }
  }
}

/** `ports: ["8080:80"]` → host port 8080 on every node address to guest port 80, as a hostPort would. */
function forwardsOf(mv: MicroVm): { hostAddress: string; hostPort: number; guestPort: number }[] | undefined {
  const list = (mv.spec.ports ?? []).map((p) => {
    const m = /^(\d{1,5}):(\d{1,5})$/.exec(p);
    if (!m) throw new BangerError("BAD_REQUEST", `port ${JSON.stringify(p)} is not hostPort:guestPort`, { hint: 'write ports as ["8080:80"]' });
    return { hostAddress: "0.0.0.0", hostPort: Number(m[1]), guestPort: Number(m[2]) };
  });
  return list.length > 0 ? list : undefined;
}
