import type { Logger } from "pino";
import { BangerError } from "../domain/errors.js";
import { expiresAt, peerGroup, runningSinceFor } from "../domain/microvm-spec.js";
import { type PlacementObservation, placementStatus } from "../domain/microvm-status.js";
import type { ClusterControl, ClusterView, NodeHealth, Placeholder, WatchedMicroVm } from "../ports/cluster-control.js";

export interface ControllerPolicy {
  /** A bound node NotReady this long is lost: its MicroVMs are marked NodeLost and placed again. */
  nodeLostGraceMs: number;
  /** Passes over the last view without an event, so the grace period is noticed when it ends. */
  resyncMs: number;
  /** MicroVMs reconciled at once. */
  concurrency: number;
}

export const DEFAULT_POLICY: ControllerPolicy = { nodeLostGraceMs: 300_000, resyncMs: 10_000, concurrency: 8 };

/** setTimeout's ceiling (about 24.8 days); a later expiry is re-armed by a pass before then. */
const MAX_TIMER_MS = 2 ** 31 - 1;

/**
 * The banger-k8s controller (docs/scale-out.md): for every MicroVM it keeps one placeholder in
 * place, holds the VM finalizer, mirrors placement into status and fails over from lost nodes.
 * It acts on the whole current view, never on single events, so a restart (a fresh listing),
 * a replayed event or two events out of order lead to the same writes, or to none.
 */
export class ClusterController {
  private view?: ClusterView;
  private dirty = false;
  private running?: Promise<void>;
  private retry?: NodeJS.Timeout;
  /** The earliest time to live still running, found by the last pass; a timer wakes the controller then. */
  private nextExpiry?: number;
  private expiry?: NodeJS.Timeout;

  constructor(
    private readonly control: ClusterControl,
    private readonly log: Logger,
    private readonly policy: ControllerPolicy = DEFAULT_POLICY,
    private readonly now: () => number = Date.now,
  ) {}

  async run(signal: AbortSignal): Promise<void> {
    const tick = setInterval(() => this.kick(signal), this.policy.resyncMs);
    try {
      await this.control.watch((v) => {
        this.view = v;
        this.kick(signal);
      }, signal);
    } finally {
      clearInterval(tick);
      clearTimeout(this.retry);
      await this.running;
      clearTimeout(this.expiry);
    }
  }

  private kick(signal: AbortSignal): void {
    if (!this.view || signal.aborted) return;
    this.dirty = true;
    this.running ??= this.loop(signal).finally(() => (this.running = undefined));
  }

  private async loop(signal: AbortSignal): Promise<void> {
    while (this.dirty && !signal.aborted) {
      this.dirty = false;
      const view = this.view!;
      this.nextExpiry = undefined;
      const failed = await this.pass(view, signal);
      if (failed && !signal.aborted) {
        clearTimeout(this.retry);
        this.retry = setTimeout(() => this.kick(signal), 1000);
      }
      this.armExpiry(signal);
    }
  }

  /** A timer for the next time to live to end, rather than a poll: derived from status each pass, so it survives a restart. */
  private armExpiry(signal: AbortSignal): void {
    clearTimeout(this.expiry);
    if (this.nextExpiry === undefined || signal.aborted) return;
    const wait = Math.min(Math.max(this.nextExpiry - this.now(), 0), MAX_TIMER_MS);
    this.expiry = setTimeout(() => this.kick(signal), wait);
  }

  /** One pass over every MicroVM; true when some step failed (retried after a pause). */
  private async pass(view: ClusterView, signal: AbortSignal): Promise<boolean> {
    const byUid = new Map<string, Placeholder>();
    for (const p of view.placeholders) byUid.set(p.microVmUid, p);
    const nodes = new Map(view.nodes.map((n) => [n.name, n]));
    const queue = [...view.microVms];
    let failed = false;
    const worker = async () => {
      for (let vm = queue.shift(); vm && !signal.aborted; vm = queue.shift()) {
        const p = byUid.get(vm.uid);
        const placeholder = p && p.namespace === vm.namespace ? p : undefined;
        try {
          await this.reconcile(vm, placeholder, nodes, view.microVms);
        } catch (e) {
          failed = true;
          const err = e as BangerError;
          this.log.warn({ vm: `${vm.namespace}/${vm.name}`, stage: "reconcile", code: err.code, err: err.message }, "reconcile failed; retrying");
        }
      }
    };
    await Promise.all(Array.from({ length: this.policy.concurrency }, worker));
    return failed;
  }

  private async reconcile(vm: WatchedMicroVm, p: Placeholder | undefined, nodes: Map<string, NodeHealth>, all: WatchedMicroVm[]): Promise<void> {
    if (vm.deleting) return this.finish(vm, p, nodes);
    if (await this.expire(vm)) return;
    if (!vm.hasFinalizer) await this.control.addFinalizer(vm);
    if (!p) {
      try {
        // Peers share a node's bridge: the placeholder is co-located with theirs (docs/scale-out.md "Peers").
        await this.control.place(vm, peerGroup(vm, all));
      } catch (e) {
        if (!(e instanceof BangerError) || e.code !== "CLUSTER_CONFLICT") throw e;
        await this.observe(vm, { kind: "conflict", message: e.message });
      }
      return;
    }
    if (p.deleting) return;
    if (!p.node) {
      const why = p.unschedulable ?? { reason: "Pending", message: "waiting for the scheduler" };
      return this.observe(vm, { kind: "pending", ...why });
    }
    const lost = await this.lostReason(p.node, nodes);
    if (!lost) return this.observe(vm, { kind: "bound", node: p.node });
    // Failover: the placeholder goes, the next pass makes a new one, and the scheduler (which
    // skips NotReady and missing nodes) binds it elsewhere. The old node, if it comes back,
    // finds its Pod gone and removes the VM.
    this.log.warn({ vm: `${vm.namespace}/${vm.name}`, stage: "node-lost", node: p.node, reason: lost.reason }, "node lost; placing the MicroVM again");
    await this.observe(vm, { kind: "nodeLost", node: p.node, ...lost });
    await this.control.unplace(p);
  }

  /**
   * Time to live: records when the MicroVM first ran, and deletes it `ttlSeconds` later through
   * the usual path (the finalizer holds it until its node removed the VM). True when deleted.
   */
  private async expire(vm: WatchedMicroVm): Promise<boolean> {
    const since = runningSinceFor(vm.status, this.now());
    if (since) {
      await this.control.updateStatus(vm, (cur) => {
        const s = runningSinceFor(cur, this.now());
        return s ? { ...cur, runningSince: s } : undefined;
      });
      vm = { ...vm, status: { ...vm.status, runningSince: since } };
    }
    const at = expiresAt(vm);
    if (at === undefined) return false;
    if (at > this.now()) {
      this.nextExpiry = Math.min(this.nextExpiry ?? at, at);
      return false;
    }
    this.log.info(
      { vm: `${vm.namespace}/${vm.name}`, stage: "ttl", runningSince: vm.status.runningSince, ttlSeconds: vm.spec.ttlSeconds },
      "time to live is over; deleting the MicroVM",
    );
    await this.control.remove(vm);
    return true;
  }

  /** A deleting MicroVM: its node agent removes the VM and the finalizer; if none ever will, we do. */
  private async finish(vm: WatchedMicroVm, p: Placeholder | undefined, nodes: Map<string, NodeHealth>): Promise<void> {
    if (!vm.hasFinalizer) return;
    const node = p?.node ?? vm.status.node;
    let why: string | undefined;
    if (!node) why = "never placed on a node";
    else if ((await this.lostReason(node, nodes))?.reason === "NodeDeleted") why = `node ${node} is gone`;
    if (!why) return;
    this.log.info({ vm: `${vm.namespace}/${vm.name}`, stage: "finalize", why }, "removing the VM finalizer");
    await this.control.dropFinalizer(vm);
  }

  private async lostReason(node: string, nodes: Map<string, NodeHealth>): Promise<{ reason: "NodeDeleted" | "NodeNotReady"; message: string } | undefined> {
    const n = nodes.get(node);
    if (!n) {
      // The node list is a separate stream: ask the server before calling a node gone.
      if (await this.control.nodeExists(node)) return undefined;
      return { reason: "NodeDeleted", message: `node ${node} was removed from the cluster` };
    }
    if (n.ready) return undefined;
    const since = n.since ? Date.parse(n.since) : this.now();
    if (this.now() - since < this.policy.nodeLostGraceMs) return undefined;
    return { reason: "NodeNotReady", message: `node ${node} has not been Ready since ${n.since ?? "unknown"}` };
  }

  private async observe(vm: WatchedMicroVm, obs: PlacementObservation): Promise<void> {
    const at = new Date(this.now()).toISOString().replace(/\.\d{3}Z$/, "Z");
    // Decide on the watched status first: most passes find nothing to write and read nothing.
    if (!placementStatus(vm.status, obs, at)) return;
    await this.control.updateStatus(vm, (cur) => placementStatus(cur, obs, at));
  }
}
