import { join } from "node:path";
import { firecrackerPaths } from "../adapters/firecracker/driver.js";
import { qemuPaths } from "../adapters/qemu/driver.js";
import { BangerError } from "../domain/errors.js";
import { artifactOf, type Image, type Vm, type VmmKind } from "../domain/types.js";
import { bootNetArg, gatewayOf, netmaskOf } from "../adapters/net/addr.js";
import { hostNameservers } from "../adapters/net/resolv.js";
import type { SshTarget } from "../ports/guest.js";
import type { VmmHandle, VmmSpec } from "../ports/vmm.js";
import type { AppDeps } from "./deps.js";

/** The drivers own their file layout; ask them rather than repeating socket names here. */
function controlSocket(kind: VmmKind, dir: string): string {
  return kind === "firecracker" ? firecrackerPaths(dir).apiSocket : qemuPaths(dir).qmp;
}

export const vmFiles = (dir: string) => ({
  rootfs: join(dir, "rootfs.ext4"),
  work: join(dir, "work.ext4"),
  console: join(dir, "console.log"),
  knownHosts: join(dir, "known_hosts"),
});

export function vmNotFound(name: string): BangerError {
  return new BangerError("VM_NOT_FOUND", `no VM named ${name}`, { hint: "`banger vm ls` lists VMs" });
}

export function handleOf(vm: Vm): VmmHandle | undefined {
  if (!vm.pid) return undefined;
  return {
    kind: vm.vmm,
    pid: vm.pid,
    pidStart: vm.pidStart ?? 0,
    controlSocket: controlSocket(vm.vmm, vm.dir),
    consoleLog: vmFiles(vm.dir).console,
  };
}

export function specOf(d: AppDeps, vm: Vm, image: Image): VmmSpec {
  const kernel = artifactOf(image, "kernel");
  const rootfs = artifactOf(image, "rootfs");
  if (!kernel || !rootfs || !vm.ip || !vm.mac || !vm.tap || vm.vsockCid === undefined) {
    throw new BangerError("INTERNAL", `VM ${vm.name} is missing boot inputs (kernel, rootfs, ip, tap or vsock cid)`);
  }
  const subnet = d.cfg.config.subnet;
  // Only NAT guests can reach a resolver; the others get no DNS at all.
  const net = bootNetArg(vm.ip, gatewayOf(subnet), netmaskOf(subnet), vm.name, vm.nat ? hostNameservers() : []);
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

export async function sshTarget(d: AppDeps, vm: Vm): Promise<SshTarget> {
  if (!vm.ip) throw new BangerError("VM_STATE", `VM ${vm.name} has no address`);
  return { host: vm.ip, user: "root", keyPath: await d.sshKey(), knownHostsPath: vmFiles(vm.dir).knownHosts };
}

/** Last lines of the guest console, appended to boot failures so the cause is visible without digging. */
export async function consoleTail(d: AppDeps, dir: string, lines = 25): Promise<string | undefined> {
  const tail = await d.console.tail(dir, lines).catch(() => "");
  return tail ? `--- last ${lines} lines of the guest console ---\n${tail}` : undefined;
}

/** Waits for SSH and then each declared service, each with its own timeout. */
export async function waitReady(d: AppDeps, vm: Vm, image: Image, signal: AbortSignal): Promise<{ ssh: () => Promise<void>; services: () => Promise<string> }> {
  const target = await sshTarget(d, vm);
  return {
    ssh: () => d.guest.waitSsh(target, d.cfg.config.ssh_timeout_s * 1000, signal),
    services: async () => {
      const others = image.guest.services.filter((s) => s.port !== 22);
      for (const svc of others) {
        await d.guest.waitPort(vm.ip!, svc.port, svc.timeoutMs ?? d.cfg.config.service_timeout_s * 1000, signal).catch((e: Error) => {
          throw new BangerError("GUEST_NOT_READY", `service ${svc.name} did not listen on port ${svc.port}: ${e.message}`, {
            hint: `raise service_timeout_s if the guest is just slow; \`banger vm ssh ${vm.name} -- systemctl status ${svc.name}\` shows why`,
          });
        });
      }
      return others.map((s) => `${s.name}:${s.port}`).join(", ");
    },
  };
}
