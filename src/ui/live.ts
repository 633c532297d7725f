import type { LifecycleEvent, Vm } from "../domain/types.js";

type Listener = () => void;

/** Paused pool members are bangerd's, not anyone's VMs, until a create claims (and renames) one; a failed one is shown so it can be removed. */
const shown = (v: Vm) => v.role !== "pool" || v.state === "failed";

/**
 * The page's copy of the daemon's VMs, kept current by GET /v1/events: a snapshot on connect
 * (`hello`), then each change as bangerd records it, whoever caused it (this tab, another tab,
 * the CLI). Stage events are kept per VM name for the progress views.
 */
class LiveState {
  vms = new Map<string, Vm>();
  stages = new Map<string, LifecycleEvent[]>();
  connected = false;
  private readonly listeners = new Set<Listener>();
  private readonly stageListeners = new Set<(e: LifecycleEvent) => void>();
  private readonly imageListeners = new Set<Listener>();
  private source?: EventSource;

  start(): void {
    if (this.source) return;
    const es = new EventSource("/v1/events");
    this.source = es;
    es.addEventListener("hello", (m) => {
      const { vms } = JSON.parse((m as MessageEvent<string>).data) as { vms: Vm[] };
      this.vms = new Map(vms.filter(shown).map((v) => [v.name, v]));
      this.connected = true;
      this.emit();
    });
    es.addEventListener("vm", (m) => {
      const { vm } = JSON.parse((m as MessageEvent<string>).data) as { vm: Vm };
      // A claimed pool member changes its name: the entry under the old one goes.
      for (const [name, old] of this.vms) if (old.id === vm.id && name !== vm.name) this.vms.delete(name);
      if (shown(vm)) this.vms.set(vm.name, vm);
      else this.vms.delete(vm.name);
      this.emit();
    });
    es.addEventListener("vm-removed", (m) => {
      const { name } = JSON.parse((m as MessageEvent<string>).data) as { name: string };
      this.vms.delete(name);
      this.emit();
    });
    es.addEventListener("stage", (m) => {
      const { event } = JSON.parse((m as MessageEvent<string>).data) as { event: LifecycleEvent };
      const list = this.stages.get(event.vmName) ?? [];
      list.push(event);
      this.stages.set(event.vmName, list.slice(-200));
      for (const l of this.stageListeners) l(event);
    });
    es.addEventListener("images", () => {
      for (const l of this.imageListeners) l();
    });
    // Too far behind: start over from a fresh snapshot.
    es.addEventListener("overflow", () => {
      es.close();
      this.source = undefined;
      this.start();
    });
    es.onerror = () => {
      this.connected = false;
      this.emit();
    };
  }

  onChange(l: Listener): () => void {
    this.listeners.add(l);
    return () => this.listeners.delete(l);
  }

  onStage(l: (e: LifecycleEvent) => void): () => void {
    this.stageListeners.add(l);
    return () => this.stageListeners.delete(l);
  }

  onImages(l: Listener): () => void {
    this.imageListeners.add(l);
    return () => this.imageListeners.delete(l);
  }

  private emit(): void {
    for (const l of this.listeners) l();
  }
}

export const live = new LiveState();
