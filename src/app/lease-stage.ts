import { guestAddresses, macForIp } from "../domain/addr.js";
import { BangerError } from "../domain/errors.js";
import type { Vm } from "../domain/types.js";
import type { AppConfig, AppDeps } from "./deps.js";
import type { Plan, Stage } from "./plan.js";

/**
 * The first stage of a create (and of an image build's builder VM): an IP lease and a vsock CID
 * for the row inserted just before the plan. Its first undo, so the last to run, deletes the row
 * when every other undo worked; otherwise the row stays for `banger vm rm` to finish later.
 */
export function leaseStage(
  d: Pick<AppDeps, "store"> & { config: Pick<AppConfig, "subnet"> },
  plan: Pick<Plan, "undoFailures">,
  vmId: string,
  patch: (p: Partial<Vm>) => void,
): Stage {
  return {
    name: "lease-ip",
    run: async ({ onUndo }) => {
      onUndo("vm-record", () => {
        if (plan.undoFailures === 0) d.store.deleteVm(vmId);
      });
      const ip = d.store.allocateLease(vmId, guestAddresses(d.config.subnet));
      if (!ip) throw new BangerError("NO_FREE_IP", `no free address left in ${d.config.subnet}`, { hint: "remove unused VMs or widen `subnet` in the config" });
      onUndo("lease", () => d.store.releaseLease(vmId));
      patch({ ip, mac: macForIp(ip), vsockCid: d.store.allocateVsockCid(vmId) });
      return ip;
    },
  };
}
