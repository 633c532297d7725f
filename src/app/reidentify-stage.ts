import { randomBytes, randomUUID } from "node:crypto";
import { gatewayOf, prefixLen } from "../domain/addr.js";
import { BangerError } from "../domain/errors.js";
import { knownHostsLine } from "../domain/known-hosts.js";
import { proxyCommandLine } from "../domain/proxy-command.js";
import { RESTART_SERVICES_SCRIPT, reidentifyScript } from "../domain/reidentify.js";
import type { Vm } from "../domain/types.js";
import type { InjectedFile } from "../ports/disks.js";
import type { AppConfig, AppDeps } from "./deps.js";
import type { Stage } from "./plan.js";
import { vmFiles } from "./vm-files.js";
import { sshTarget } from "./vm-ready.js";
import { authorizedKeys } from "./vm-disks.js";
import { guestSecretFiles } from "./vm-secret.js";

export type RestoreDeps = Pick<AppDeps, "files" | "disks" | "shell" | "keys" | "network" | "host" | "guest" | "console" | "channel" | "diskPool"> & {
  config: Pick<AppConfig, "subnet" | "sshTimeoutMs" | "serviceTimeoutMs" | "channelProxy" | "secretsDir">;
};

/** What the clone gets beyond banger's identity: its service password and the creating user's key. */
export interface CloneExtras {
  secret: () => string | undefined;
  callerKey?: string;
}

// A restored guest comes up in seconds, but a loaded TCG host may take a while to run the script.
const REIDENTIFY_TIMEOUT_MS = 120_000;

/** The keys a clone needs, started early (ssh-keygen) so `reidentify` does not wait for them. */
export type CloneKeys = Promise<[InjectedFile, { privateKey: string; publicKey: string }]>;

export function cloneKeys(d: RestoreDeps, callerKey: string | undefined): CloneKeys {
  const p = Promise.all([authorizedKeys(d, callerKey), d.keys.hostKey()]);
  p.catch(() => undefined); // awaited in reidentify; not an unhandled rejection if the plan fails first
  return p;
}

/**
 * Give the clone its own identity over the guest channel, then trust only its new host key. The
 * channel's RUN verb carries the script straight to a root shell; images whose banger-channel
 * predates it (CHANNEL_UNSUPPORTED) get it over SSH through the channel, which costs a handshake.
 */
export async function reidentify(d: RestoreDeps, vm: Vm, extras: CloneExtras, keysP: CloneKeys, signal: AbortSignal): Promise<string> {
  const [keys, hostKey] = await keysP;
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
    bootId: randomUUID(),
    seedHex: randomBytes(64).toString("hex"),
    nowMs: Date.now(),
  });
  const t0 = performance.now();
  const r = await runInGuest(d, vm, script, signal);
  const ms = Math.round(performance.now() - t0);
  if (r.code !== 0) {
    throw new BangerError("GUEST_NOT_READY", `re-identity of the restored guest failed (exit ${r.code}): ${r.lines.slice(-5).join(" | ")}`, {
      hint: "the snapshot may predate this banger; take it again with `banger image snapshot`, or create with --cold",
    });
  }
  await d.files.writeText(vmFiles(vm.dir).knownHosts, `${knownHostsLine(vm.ip!, hostKey.publicKey)}\n`, 0o600);
  // The guest's own step times are in the line; the rest of `ms` is the channel (and SSH, on the old path).
  return `${r.lines.find((l) => l.startsWith("reidentified ")) ?? "reidentified"} in ${ms} ms via ${r.via}`;
}

/** A root script in a guest that may have no usable network yet: the channel's RUN, else SSH through the channel. */
export async function runInGuest(d: RestoreDeps, vm: Vm, script: string, signal: AbortSignal): Promise<{ code: number; lines: string[]; via: string }> {
  try {
    const r = await d.channel.run({ name: vm.name, vmm: vm.vmm, dir: vm.dir, vsockCid: vm.vsockCid! }, script, { timeoutMs: REIDENTIFY_TIMEOUT_MS, signal });
    return { ...r, via: "channel" };
  } catch (e) {
    if (!(e instanceof BangerError) || e.code !== "CHANNEL_UNSUPPORTED") throw e;
  }
  const proxy = d.config.channelProxy;
  if (!proxy) throw new BangerError("INTERNAL", "no banger-vsock to reach the guest channel with");
  const target = { ...(await sshTarget(d, vm)), proxyCommand: proxyCommandLine([...proxy, "--creating", vm.name, "22"]) };
  const lines: string[] = [];
  const { code } = await d.shell.run(target, "sh -s", { input: script, timeoutMs: REIDENTIFY_TIMEOUT_MS, signal, onLine: (_s, line) => lines.push(line) });
  return { code, lines, via: "ssh over the channel" };
}

/** The clone's protected services start with its own password, once SSH has answered (RESTART_SERVICES_SCRIPT says why then). */
export function servicesStage(d: RestoreDeps, vm: () => Vm): Stage {
  return {
    name: "services",
    run: async ({ signal }) => {
      const r = await runInGuest(d, vm(), RESTART_SERVICES_SCRIPT, signal);
      if (r.code !== 0) throw new BangerError("GUEST_NOT_READY", `restarting the guest's services failed (exit ${r.code}): ${r.lines.slice(-3).join(" | ")}`);
      return r.lines.at(-1);
    },
  };
}
