import type { PortForward } from "../domain/forwards.js";
import type { Image, ImageStatus, LifecycleEvent, Vm, VmState } from "../domain/types.js";

/** What registration supplies; status, aliases and the timestamp are the store's. */
export type NewImage = Omit<Image, "status" | "statusDetail" | "aliases" | "createdAt" | "digest" | "lastUsedAt">;

/** `name` changes only when a create claims a paused pool member (app/vm-pool.ts), under both names' locks. */
export type VmPatch = Partial<Omit<Vm, "id" | "imageId" | "imageName" | "createdAt">>;

export interface Store {
  // images
  insertImage(img: NewImage): Image;
  /** By name, alias, or `sha256:<hex>` digest (the oldest image with that digest). */
  getImage(nameOrAlias: string): Image | undefined;
  getImageById(id: string): Image | undefined;
  listImages(): Image[];
  deleteImage(id: string): void;
  setImageStatus(id: string, status: ImageStatus, detail?: string): void;
  /** Record a use now (LRU order of pulled images). */
  touchImage(id: string): void;
  /** Point alias at image; moves it if it already points elsewhere. */
  setAlias(alias: string, imageId: string): void;

  // vms
  insertVm(vm: Vm): void;
  getVm(name: string): Vm | undefined;
  listVms(): Vm[];
  updateVm(id: string, patch: VmPatch): Vm;
  /** State compare-and-swap (`UPDATE … WHERE state IN from`); undefined when the VM was not in `from`. */
  transitionVm(id: string, from: readonly VmState[], to: VmState, patch?: VmPatch): Vm | undefined;
  deleteVm(id: string): void;
  vmsUsingImage(imageId: string): Vm[];
  nameTaken(name: string): boolean;

  // leases: unique per IP; allocation is one transaction so concurrent creates never collide
  allocateLease(vmId: string, candidates: Iterable<string>): string | undefined;
  releaseLease(vmId: string): void;

  allocateVsockCid(vmId: string): number;

  // host → guest port forwards; a host address:port is forwarded at most once (PORT_IN_USE), 0.0.0.0 overlapping every address
  addForward(f: PortForward): void;
  /** False when there was no such forward. */
  removeForward(vmId: string, hostAddress: string, hostPort: number): boolean;
  listForwards(vmId?: string): PortForward[];

  // guest ↔ guest peers: unordered pairs of VM ids, gone with either VM
  addPeers(vmId: string, peerIds: readonly string[]): void;
  removePeers(vmId: string): void;
  peerPairs(): Array<[string, string]>;

  // lifecycle events
  addEvent(ev: LifecycleEvent): void;
  events(vmId: string): LifecycleEvent[];
  /** A fresh operation id, greater than every one handed out before. */
  nextOpId(): number;
  /** Keep only the events of the VM's last keepOps operations. */
  pruneEvents(vmId: string, keepOps: number): number;

  close(): void;
}

export type { VmState };
