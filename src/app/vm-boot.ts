import { BangerError } from "../domain/errors.js";
import { bootNetArg, gatewayOf, netmaskOf } from "../domain/addr.js";
import { artifactOf, type Image, type Vm } from "../domain/types.js";
import type { HostFacts } from "../ports/host.js";
import type { Vmm, VmmHandle, VmmSpec } from "../ports/vmm.js";
import type { AppConfig } from "./deps.js";
import { vmFiles } from "./vm-files.js";

/** How the store's record of a running VM finds its process again; undefined when none is recorded. */
export function handleOf(vm: Vm, vmm: Vmm): VmmHandle | undefined {
  if (!vm.pid) return undefined;
  return { kind: vm.vmm, pid: vm.pid, pidStart: vm.pidStart ?? 0, controlSocket: vmm.controlSocket(vm.dir), consoleLog: vmm.consoleLog(vm.dir) };
}

/** Everything the VMM needs to boot this VM: the image's boot set, the VM's own disks, and its network on the command line. */
export function specOf(d: { config: Pick<AppConfig, "subnet">; host: Pick<HostFacts, "nameservers"> }, vm: Vm, image: Image): VmmSpec {
  const kernel = artifactOf(image, "kernel");
  const rootfs = artifactOf(image, "rootfs");
  if (!kernel || !rootfs || !vm.ip || !vm.mac || !vm.tap || vm.vsockCid === undefined) {
    throw new BangerError("INTERNAL", `VM ${vm.name} is missing boot inputs (kernel, rootfs, ip, tap or vsock cid)`);
  }
  const subnet = d.config.subnet;
  // Only NAT guests can reach a resolver; the others get no DNS at all.
  const net = bootNetArg(vm.ip, gatewayOf(subnet), netmaskOf(subnet), vm.name, vm.nat ? d.host.nameservers() : []);
  const files = vmFiles(vm.dir);
  return {
    vmId: vm.id,
    name: vm.name,
    dir: vm.dir,
    kernel: kernel.path,
    initrd: artifactOf(image, "initrd")?.path,
    bootArgs: `${image.bootArgs} ${net}`,
    rootfs: files.rootfs,
    workDisk: files.work,
    vcpus: vm.vcpus,
    memoryMib: vm.memoryMib,
    tap: vm.tap,
    mac: vm.mac,
    vsockCid: vm.vsockCid,
  };
}
