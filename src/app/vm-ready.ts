import { BangerError } from "../domain/errors.js";
import { proxyCommandLine } from "../domain/proxy-command.js";
import type { Image, Vm } from "../domain/types.js";
import type { SshTarget } from "../ports/guest.js";
import type { AppConfig, AppDeps } from "./deps.js";
import { vmFiles } from "./vm-files.js";

export async function sshTarget(d: Pick<AppDeps, "keys">, vm: Vm): Promise<SshTarget> {
  if (!vm.ip) throw new BangerError("VM_STATE", `VM ${vm.name} has no address`);
  return { host: vm.ip, user: "root", keyPath: await d.keys.sshKey(), knownHostsPath: vmFiles(vm.dir).knownHosts };
}

/** Last lines of the guest console, appended to boot failures so the cause is visible without digging. */
export async function consoleTail(d: Pick<AppDeps, "console">, dir: string, lines = 25): Promise<string | undefined> {
  const tail = await d.console.tail(dir, lines).catch(() => "");
  return tail ? `--- last ${lines} lines of the guest console ---\n${tail}` : undefined;
}

type ReadyDeps = Pick<AppDeps, "keys" | "guest"> & { config: Pick<AppConfig, "sshTimeoutMs" | "serviceTimeoutMs" | "channelProxy"> };

/**
 * SSH login (authenticated `true`) over the IP; for a VM without NAT also over the guest channel,
 * whichever succeeds first (the other is cancelled). Without NAT the guest may have no usable
 * route at all, and the channel needs none. Resolves with the path that answered, for the stage detail.
 */
async function waitSshAny(d: ReadyDeps, vm: Vm, target: SshTarget, signal: AbortSignal): Promise<string> {
  const proxy = d.config.channelProxy;
  if (vm.nat || !proxy) {
    await d.guest.waitSsh(target, d.config.sshTimeoutMs, signal);
    return "via ip";
  }
  const paths = [
    { via: "via ip", target },
    { via: "via channel", target: { ...target, proxyCommand: proxyCommandLine([...proxy, vm.name, "22"]) } },
  ].map((p) => ({ ...p, ac: new AbortController() }));
  const onAbort = () => paths.forEach((p) => p.ac.abort(signal.reason));
  signal.addEventListener("abort", onAbort, { once: true });
  try {
    return await Promise.any(
      paths.map(async (p) => {
        await d.guest.waitSsh(p.target, d.config.sshTimeoutMs, p.ac.signal);
        for (const other of paths) if (other !== p) other.ac.abort(new BangerError("CANCELLED", `the other path answered first`));
        return p.via;
      }),
    );
  } catch (e) {
    signal.throwIfAborted();
    // Both failed: the IP's reason is the one users know how to act on.
    throw (e as AggregateError).errors[0];
  } finally {
    signal.removeEventListener("abort", onAbort);
  }
}

/** Waits for SSH and then each declared service, each with its own timeout. */
export async function waitReady(
  d: ReadyDeps,
  vm: Vm,
  image: Image,
  signal: AbortSignal,
): Promise<{ ssh: () => Promise<string>; services: () => Promise<string> }> {
  const target = await sshTarget(d, vm);
  return {
    ssh: () => waitSshAny(d, vm, target, signal),
    services: async () => {
      const others = image.guest.services.filter((s) => s.port !== 22);
      for (const svc of others) {
        await d.guest.waitPort(vm.ip!, svc.port, svc.timeoutMs ?? d.config.serviceTimeoutMs, signal).catch((e: Error) => {
          throw new BangerError("GUEST_NOT_READY", `service ${svc.name} did not listen on port ${svc.port}: ${e.message}`, {
            hint: `raise service_timeout_s if the guest is just slow; \`banger vm ssh ${vm.name} -- systemctl status ${svc.name}\` shows why`,
          });
        });
      }
      return others.map((s) => `${s.name}:${s.port}`).join(", ");
    },
  };
}
