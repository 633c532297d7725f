import type { Vm } from "../domain/types.js";
import type { Store } from "../ports/store.js";
import type { EventBus } from "./event-bus.js";

/**
 * The store, publishing each committed change on the bus. Every VM state change and lifecycle
 * event goes through the store, whoever asked for it (CLI, browser, the liveness watcher), so
 * this one seam keeps every listener in step without the use cases knowing about listeners.
 */
export function observedStore(store: Store, bus: EventBus): Store {
  const vmChanged = <A extends unknown[]>(f: (...a: A) => Vm | undefined) =>
    ((...a: A) => {
      const vm = f(...a);
      if (vm) bus.publish({ type: "vm", vm });
      return vm;
    }) as never;
  const imagesChanged = <A extends unknown[], R>(f: (...a: A) => R) =>
    ((...a: A) => {
      const r = f(...a);
      bus.publish({ type: "images" });
      return r;
    }) as never;
  const s = store;
  return Object.assign(Object.create(null) as Store, {
    insertImage: imagesChanged(s.insertImage.bind(s)),
    getImage: s.getImage.bind(s),
    getImageById: s.getImageById.bind(s),
    listImages: s.listImages.bind(s),
    deleteImage: imagesChanged(s.deleteImage.bind(s)),
    setImageStatus: imagesChanged(s.setImageStatus.bind(s)),
    touchImage: s.touchImage.bind(s),
    setAlias: imagesChanged(s.setAlias.bind(s)),
    insertVm: (vm: Parameters<Store["insertVm"]>[0]) => {
      s.insertVm(vm);
      bus.publish({ type: "vm", vm: s.getVm(vm.name) ?? vm });
    },
    getVm: s.getVm.bind(s),
    listVms: s.listVms.bind(s),
    updateVm: vmChanged(s.updateVm.bind(s)),
    transitionVm: vmChanged(s.transitionVm.bind(s)),
    deleteVm: (id: string) => {
      const gone = s.listVms().find((v) => v.id === id);
      s.deleteVm(id);
      if (gone) bus.publish({ type: "vm-removed", id, name: gone.name });
    },
    vmsUsingImage: s.vmsUsingImage.bind(s),
    nameTaken: s.nameTaken.bind(s),
    allocateLease: s.allocateLease.bind(s),
    releaseLease: s.releaseLease.bind(s),
    allocateVsockCid: s.allocateVsockCid.bind(s),
    addForward: s.addForward.bind(s),
    removeForward: s.removeForward.bind(s),
    listForwards: s.listForwards.bind(s),
    addPeers: s.addPeers.bind(s),
    removePeers: s.removePeers.bind(s),
    peerPairs: s.peerPairs.bind(s),
    addEvent: (ev: Parameters<Store["addEvent"]>[0]) => {
      s.addEvent(ev);
      bus.publish({ type: "stage", event: ev });
    },
    events: s.events.bind(s),
    nextOpId: s.nextOpId.bind(s),
    pruneEvents: s.pruneEvents.bind(s),
    close: s.close.bind(s),
  } satisfies Store);
}
