import { randomBytes } from "node:crypto";
import { gatewayOf, prefixLen } from "../domain/addr.js";
import { BangerError } from "../domain/errors.js";
import { knownHostsLine } from "../domain/known-hosts.js";
import { proxyCommandLine } from "../domain/proxy-command.js";
import { reidentifyScript } from "../domain/reidentify.js";
import type { Vm } from "../domain/types.js";
import type { VmmHandle } from "../ports/vmm.js";
import type { BootContext } from "./boot-stages.js";
import type { AppConfig, AppDeps } from "./deps.js";
import type { Stage } from "./plan.js";
import type { BootSource } from "./snapshot-source.js";
import { specOf } from "./vm-boot.js";
import { vmFiles } from "./vm-files.js";
import { sshTarget, waitReady } from "./vm-ready.js";
import { authorizedKeys } from "./vm-disks.js";
import { guestSecretFiles } from "./vm-secret.js";

export type RestoreDeps = Pick<AppDeps, "files" | "disks" | "shell" | "keys" | "network" | "host" | "guest" | "console"> & {
  config: Pick<AppConfig, "subnet" | "sshTimeoutMs" | "serviceTimeoutMs" | "channelProxy" | "secretsDir">;
};

// A restored guest comes up in seconds, but a loaded TCG host may take a while to run the script.
const REIDENTIFY_TIMEOUT_MS = 120_000;

/**
 * A create from a golden snapshot, after the lease and the TAP: private copies of the snapshot's
 * disks, NAT, `restore` (a new VMM on the snapshot, guest paused), `resume`, then `reidentify`
 * over the guest channel (the clone still holds the golden IP, so the network cannot be trusted
 * to reach the right guest), and SSH over the VM's own IP and new host key as the proof.
 * `resume` comes before `reidentify` because re-identity is done by the guest itself.
 */
/** What the clone gets beyond banger's identity: its service password and the creating user's key. */
export interface CloneExtras {
  secret: () => string | undefined;
  callerKey?: string;
}

export function restoreStages(
  c: BootContext & { d: RestoreDeps },
  source: Extract<BootSource, { kind: "snapshot" }>,
  extras: CloneExtras = { secret: () => undefined },
): Stage[] {
  const { d, vmm, image } = c;
  const { snap, artifacts, snaps } = source;
  let handle: VmmHandle | undefined;
  const vm = () => c.vm();
  const files = () => vmFiles(vm().dir);
  return [
    {
      name: "disks",
      run: async ({ onUndo }) => {
        await d.files.mkdir(vm().dir);
        onUndo("vm-dir", () => d.files.remove(vm().dir));
        // cp --reflink=auto --sparse=always: near-free on a reflink filesystem, a sparse copy elsewhere.
        await d.files.copy(artifacts.rootfs, files().rootfs);
        await d.files.copy(artifacts.work, files().work);
        // Until re-identity, the clone answers with the golden host key.
        await d.files.writeText(files().knownHosts, `${knownHostsLine(vm().ip!, snap.hostPublicKey)}\n`, 0o600);
        return `private copies of snapshot ${snap.record.id}'s disks`;
      },
    },
    ...(vm().nat
      ? [
          {
            name: "nat",
            run: async ({ onUndo }) => {
              const ip = vm().ip!;
              await d.network.enableNat(ip);
              onUndo("nat", () => d.network.disableNat(ip));
            },
          } satisfies Stage,
        ]
      : []),
    {
      name: "restore",
      run: async ({ onUndo, signal }) => {
        // The golden VM's argv: its MAC and kernel command line travel in the migration stream anyway.
        const spec = { ...specOf(d, vm(), image), bootArgs: snap.bootArgs, mac: snap.mac };
        const h = await snaps.restore(spec, artifacts, signal);
        handle = h;
        onUndo("vmm", async () => {
          await vmm.kill(h);
          c.patch({ pid: undefined, pidStart: undefined });
        });
        c.patch({ pid: h.pid, pidStart: h.pidStart, bootSource: `snapshot ${snap.record.id}` });
        return `${vmm.kind} pid ${h.pid} from snapshot ${snap.record.id}`;
      },
    },
    { name: "resume", run: async ({ signal }) => snaps.resume(handle!, signal) },
    { name: "reidentify", run: ({ signal }) => reidentify(d, vm(), extras, signal) },
    ...(c.noWait
      ? []
      : [
          { name: "wait-ssh", run: async ({ signal }) => (await waitReady(d, vm(), image, signal)).ssh() } satisfies Stage,
          { name: "wait-services", run: async ({ signal }) => (await waitReady(d, vm(), image, signal)).services() } satisfies Stage,
        ]),
  ];
}

/** Give the clone its own identity over the guest channel, then trust only its new host key. */
async function reidentify(d: RestoreDeps, vm: Vm, extras: CloneExtras, signal: AbortSignal): Promise<string> {
  const proxy = d.config.channelProxy;
  if (!proxy) throw new BangerError("INTERNAL", "no banger-vsock to reach the guest channel with");
  const [keys, hostKey] = await Promise.all([authorizedKeys(d, extras.callerKey), d.keys.hostKey()]);
  const secret = extras.secret();
  const script = reidentifyScript({
    name: vm.name,
    ip: vm.ip!,
    prefix: prefixLen(d.config.subnet),
    gateway: gatewayOf(d.config.subnet),
    mac: vm.mac!,
    nameservers: vm.nat ? d.host.nameservers() : [],
    hostKey,
    authorizedKeys: keys.content.toString(),
    ...(secret ? { secretFiles: guestSecretFiles(secret).map((f) => ({ path: f.path, content: f.content.toString() })) } : {}),
    machineId: randomBytes(16).toString("hex"),
    seedHex: randomBytes(64).toString("hex"),
    nowMs: Date.now(),
  });
  const target = { ...(await sshTarget(d, vm)), proxyCommand: proxyCommandLine([...proxy, "--creating", vm.name, "22"]) };
  const out: string[] = [];
  const t0 = performance.now();
  const { code } = await d.shell.run(target, "sh -s", {
    input: script,
    timeoutMs: REIDENTIFY_TIMEOUT_MS,
    signal,
    onLine: (_s, line) => out.push(line),
  });
  const ms = Math.round(performance.now() - t0);
  if (code !== 0) {
    throw new BangerError("GUEST_NOT_READY", `re-identity of the restored guest failed (exit ${code}): ${out.slice(-5).join(" | ")}`, {
      hint: "the snapshot may predate this banger; take it again with `banger image snapshot`, or create with --cold",
    });
  }
  await d.files.writeText(vmFiles(vm.dir).knownHosts, `${knownHostsLine(vm.ip!, hostKey.publicKey)}\n`, 0o600);
  // The guest's own step times are in the line; the rest of `ms` is ssh over the channel.
  return `${out.find((l) => l.startsWith("reidentified ")) ?? "reidentified"} in ${ms} ms`;
}
