import { BangerError } from "../domain/errors.js";
import type { Vm } from "../domain/types.js";
import type { OpenedStream } from "../ports/channel.js";
import type { AppDeps } from "./deps.js";
import { getVm } from "./vm-lookup.js";
import { requireReachable } from "../domain/vm-reach.js";

/** How long opening a guest port may take: the guest answers in milliseconds once booted. */
export const CONNECT_TIMEOUT_MS = 10_000;

export function parseGuestPort(text: string | undefined | null): number {
  if (text === undefined || text === null || !/^\d{1,5}$/.test(text) || Number(text) < 1 || Number(text) > 65535) {
    throw new BangerError("BAD_REQUEST", `port must be an integer from 1 to 65535, got ${JSON.stringify(text ?? "")}`, {
      hint: "e.g. ?port=22 for the guest's sshd",
    });
  }
  return Number(text);
}

/**
 * A byte stream to a port of a running VM (or, asked for, one being created) over its guest channel (vsock or virtio-serial), never
 * its network. A read as far as the VM is concerned: no lock, no state change; a stop or rm
 * while it is open simply ends it with the VMM.
 */
export async function openGuestPort(
  d: Pick<AppDeps, "store" | "channel" | "log">,
  name: string,
  portText: string | undefined | null,
  signal?: AbortSignal,
  opts: { creating?: boolean } = {},
): Promise<OpenedStream & { vm: Vm; port: number }> {
  const port = parseGuestPort(portText);
  const vm = getVm(d, name);
  // "creating" only when asked: a create from a snapshot re-identifies its restored guest over this
  // route (banger-vsock --creating). Nobody else gets in while a create runs: wait-ssh's channel
  // path, say, would hold the one virtio-serial session of a guest whose IP answered first.
  requireReachable(vm, "connect", opts);
  if (vm.vsockCid === undefined) throw new BangerError("INTERNAL", `VM ${vm.name} has no vsock CID`);
  const t0 = performance.now();
  const opened = await d.channel.open({ name: vm.name, vmm: vm.vmm, dir: vm.dir, vsockCid: vm.vsockCid }, port, { timeoutMs: CONNECT_TIMEOUT_MS, signal });
  d.log.info({ vm: vm.name, stage: "connect", port, via: opened.via, ms: Math.round(performance.now() - t0) }, "guest port opened");
  return { ...opened, vm, port };
}
