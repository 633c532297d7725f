import { randomBytes } from "node:crypto";
import { gatewayOf, prefixLen } from "../domain/addr.js";
import { BangerError } from "../domain/errors.js";
import { knownHostsLine } from "../domain/known-hosts.js";
import { proxyCommandLine } from "../domain/proxy-command.js";
import { reidentifyScript } from "../domain/reidentify.js";
import type { Vm } from "../domain/types.js";
import type { AppConfig, AppDeps } from "./deps.js";
import { vmFiles } from "./vm-files.js";
import { sshTarget } from "./vm-ready.js";
import { authorizedKeys } from "./vm-disks.js";
import { guestSecretFiles } from "./vm-secret.js";

export type RestoreDeps = Pick<AppDeps, "files" | "disks" | "shell" | "keys" | "network" | "host" | "guest" | "console"> & {
  config: Pick<AppConfig, "subnet" | "sshTimeoutMs" | "serviceTimeoutMs" | "channelProxy" | "secretsDir">;
};

/** What the clone gets beyond banger's identity: its service password and the creating user's key. */
export interface CloneExtras {
  secret: () => string | undefined;
  callerKey?: string;
}

// A restored guest comes up in seconds, but a loaded TCG host may take a while to run the script.
const REIDENTIFY_TIMEOUT_MS = 120_000;

/** Give the clone its own identity over the guest channel, then trust only its new host key. */
export async function reidentify(d: RestoreDeps, vm: Vm, extras: CloneExtras, signal: AbortSignal): Promise<string> {
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
