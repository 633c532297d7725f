import { BangerError } from "../domain/errors.js";
import { proxyCommandLine } from "../domain/proxy-command.js";
import { RESTART_SERVICES_SCRIPT } from "../domain/reidentify.js";
import type { Image, Vm } from "../domain/types.js";
import type { SshTarget } from "../ports/guest.js";
import type { AppConfig, AppDeps } from "./deps.js";
import { vmFiles } from "./vm-files.js";
import { readSecret } from "./vm-secret.js";
import { authOf, basicAuth, type ServiceAuth } from "../domain/service-auth.js";
import type { GuestService } from "../domain/types.js";
import { canPush, pushedReady, type Pushed } from "./vm-ready-push.js";

// Generous: opencode under TCG on a loaded host can take seconds per request.
const PROBE_MS = 10_000;
const POLL_MS = 250;

/**
 * A protected service is ready when it answers 200 to its password, and it must answer 401
 * without: a guest whose unit ignores the injected password would otherwise serve the bridge open.
 */
async function waitAuthenticated(
  d: Pick<AppDeps, "guest">,
  vm: Vm,
  svc: GuestService,
  auth: ServiceAuth,
  secret: string,
  deadline: number,
  signal: AbortSignal,
): Promise<void> {
  const probe = (headers: Record<string, string>) => d.guest.httpStatus(vm.ip!, svc.port, auth.probePath, headers, PROBE_MS).catch((e: Error) => e.message);
  let last: number | string = "never attempted";
  for (;;) {
    signal.throwIfAborted();
    last = await probe({ authorization: basicAuth(auth.username, secret) });
    if (last === 200) break;
    if (Date.now() + POLL_MS >= deadline) {
      throw new BangerError("GUEST_NOT_READY", `service ${svc.name} on port ${svc.port} did not accept its password (last answer: ${last})`, {
        hint: `the image's ${svc.name} unit must read ${auth.guestEnvFile}; rebuild the image (\`make image-debian\`) if it predates service passwords`,
      });
    }
    await new Promise((r) => setTimeout(r, POLL_MS));
  }
  // A slow guest may miss one probe: only an answer other than 401 is a verdict.
  for (;;) {
    signal.throwIfAborted();
    const open = await probe({});
    if (open === 401) return;
    if (typeof open === "number") {
      throw new BangerError("GUEST_NOT_READY", `service ${svc.name} on port ${svc.port} answered ${open} without the password, not 401`, {
        hint: `the image's ${svc.name} unit must read ${auth.guestEnvFile} so ${auth.envVar} is set; rebuild the image`,
      });
    }
    if (Date.now() + POLL_MS >= deadline) {
      throw new BangerError("GUEST_NOT_READY", `service ${svc.name} on port ${svc.port} stopped answering (${open})`, {
        hint: `raise service_timeout_s if the guest is just slow; \`banger vm ssh ${vm.name} -- systemctl status ${svc.name}\` shows why`,
      });
    }
    await new Promise((r) => setTimeout(r, POLL_MS));
  }
}

export async function sshTarget(d: Pick<AppDeps, "keys">, vm: Vm): Promise<SshTarget> {
  if (!vm.ip) throw new BangerError("VM_STATE", `VM ${vm.name} has no address`);
  return { host: vm.ip, user: "root", keyPath: await d.keys.sshKey(), knownHostsPath: vmFiles(vm.dir).knownHosts };
}

/** Last lines of the guest console, appended to boot failures so the cause is visible without digging. */
export async function consoleTail(d: Pick<AppDeps, "console">, dir: string, lines = 25): Promise<string | undefined> {
  const tail = await d.console.tail(dir, lines).catch(() => "");
  return tail ? `--- last ${lines} lines of the guest console ---\n${tail}` : undefined;
}

type ReadyDeps = Pick<AppDeps, "keys" | "guest" | "files" | "channel" | "log"> & {
  config: Pick<AppConfig, "sshTimeoutMs" | "serviceTimeoutMs" | "channelProxy" | "secretsDir" | "readyPush">;
};

/**
 * SSH login (authenticated `true`) over the IP; for a VM without NAT also over the guest channel,
 * whichever succeeds first (the other is cancelled). Without NAT the guest may have no usable
 * route at all, and the channel needs none. Resolves with the path that answered, for the stage detail.
 */
async function waitSshAny(d: ReadyDeps, vm: Vm, target: SshTarget, signal: AbortSignal, restored: boolean): Promise<string> {
  const proxy = d.config.channelProxy;
  // A restored clone's network was just set by re-identity and its sshd has run since the golden
  // boot: one login over the IP is the whole proof, and a second path would make sshd re-exec twice.
  // That login also restarts its services with the password re-identity wrote (RESTART_SERVICES_SCRIPT
  // says why only now), which saves the guest a session of its own.
  if (restored) {
    await d.guest.waitSsh(target, d.config.sshTimeoutMs, signal, { probe: false, command: RESTART_SERVICES_SCRIPT });
    return "via ip; services restarted";
  }
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

/** The push's part of a stage detail. */
function pushNote(p: Pushed | undefined): string {
  if (!p) return "";
  return p.pushed ? `; pushed by banger-agent in ${p.ms} ms` : `; polled (${p.why})`;
}

/**
 * Waits for SSH and then each declared service, each with its own timeout. Where the guest can
 * say so (canPush), each first waits for banger-agent's READY for its ports, so the SSH login and
 * the password checks below run once the ports listen instead of polling from boot; they still
 * run, since a listening port is not yet a login or a password that works.
 */
export async function waitReady(
  d: ReadyDeps,
  vm: Vm,
  image: Image,
  signal: AbortSignal,
  opts: { restored?: boolean } = {},
): Promise<{ ssh: () => Promise<string>; services: () => Promise<string> }> {
  const target = await sshTarget(d, vm);
  const push = canPush(d, image, opts.restored ?? false);
  return {
    ssh: async () => {
      const pushed = push ? await pushedReady(d, vm, [22], d.config.sshTimeoutMs, signal) : undefined;
      return `${await waitSshAny(d, vm, target, signal, opts.restored ?? false)}${pushNote(pushed)}`;
    },
    services: async () => {
      const others = image.guest.services.filter((s) => s.port !== 22);
      const secret = await readSecret(d, vm);
      const notes: string[] = [];
      const longest = Math.max(0, ...others.map((s) => s.timeoutMs ?? d.config.serviceTimeoutMs));
      const pushed =
        push && others.length > 0
          ? await pushedReady(
              d,
              vm,
              others.map((s) => s.port),
              longest,
              signal,
            )
          : undefined;
      for (const svc of others) {
        const timeoutMs = svc.timeoutMs ?? d.config.serviceTimeoutMs;
        const deadline = Date.now() + timeoutMs;
        await d.guest.waitPort(vm.ip!, svc.port, timeoutMs, signal).catch((e: Error) => {
          throw new BangerError("GUEST_NOT_READY", `service ${svc.name} did not listen on port ${svc.port}: ${e.message}`, {
            hint: `raise service_timeout_s if the guest is just slow; \`banger vm ssh ${vm.name} -- systemctl status ${svc.name}\` shows why`,
          });
        });
        const auth = authOf(svc.name);
        if (auth && secret) await waitAuthenticated(d, vm, svc, auth, secret, deadline, signal);
        notes.push(`${svc.name}:${svc.port}${auth && secret ? " (password checked)" : ""}`);
      }
      return `${notes.join(", ")}${pushNote(pushed)}`;
    },
  };
}
