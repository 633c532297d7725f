import { asBangerError } from "../domain/errors.js";
import type { Image, Vm } from "../domain/types.js";
import type { AppConfig, AppDeps } from "./deps.js";

export type PushDeps = Pick<AppDeps, "channel" | "log"> & { config: Pick<AppConfig, "readyPush"> };

/** What the push wait found: the ports listen (the agent said so), or why the caller must poll instead. */
export type Pushed = { pushed: true; ms: number } | { pushed: false; why: string };

/**
 * Whether this boot's readiness can come from the guest: ready_push is on, the image has
 * banger-agent (found at registration), and the VM is booting cold. A restored clone's services
 * ran before its snapshot was taken; it is checked with one login, as before.
 */
export function canPush(d: PushDeps, image: Image, restored: boolean): boolean {
  return d.config.readyPush && image.guest.agent === true && !restored;
}

/**
 * Waits until banger-agent reports every port listening (its READY), for at most `timeoutMs`.
 * Never fails the boot: a transport or image that cannot push (CHANNEL_UNSUPPORTED: Firecracker
 * and vhost-vsock for now), a dead channel or a timeout all resolve with the reason, and the
 * caller polls as it would without the agent. Only the caller's own cancellation rejects.
 */
export async function pushedReady(d: PushDeps, vm: Vm, ports: number[], timeoutMs: number, signal: AbortSignal): Promise<Pushed> {
  const t0 = Date.now();
  const stop = new AbortController();
  const onAbort = () => stop.abort(signal.reason);
  signal.addEventListener("abort", onAbort, { once: true });
  const timer = setTimeout(() => stop.abort(), timeoutMs);
  try {
    const events = await d.channel.ready({ name: vm.name, vmm: vm.vmm, dir: vm.dir, vsockCid: vm.vsockCid ?? 0 }, ports, {
      timeoutMs,
      signal: stop.signal,
    });
    for await (const e of events) {
      if (e.kind === "listen") d.log.debug({ vm: vm.name, stage: "ready-push", port: e.port, ms: Date.now() - t0 }, "guest port listens");
      if (e.kind === "ready") return { pushed: true, ms: Date.now() - t0 };
    }
    signal.throwIfAborted();
    return { pushed: false, why: stop.signal.aborted ? `no READY within ${timeoutMs} ms` : "the agent's stream ended before READY" };
  } catch (e) {
    signal.throwIfAborted();
    const err = asBangerError(e);
    if (err.code !== "CHANNEL_UNSUPPORTED")
      d.log.warn({ vm: vm.name, stage: "ready-push", code: err.code, err: err.message }, "readiness push failed; polling");
    return { pushed: false, why: `${err.code}: ${err.message}` };
  } finally {
    clearTimeout(timer);
    signal.removeEventListener("abort", onAbort);
  }
}
