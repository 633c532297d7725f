import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { Duplex } from "node:stream";
import type { Logger } from "pino";
import { BangerError } from "../../domain/errors.js";
import type { ChannelTarget, GuestChannel, OpenedStream, RunResult } from "../../ports/channel.js";
import { firecrackerSocket } from "../firecracker/layout.js";
import { dialGuestPort } from "./handshake.js";
import { readRunResult, wrapScript } from "./run.js";

/** How long a second open of a virtio-serial channel waits for the session before it to end. */
const SERIAL_BUSY_WAIT_MS = 2_000;
export const VHOST_VSOCK_DEV = "/dev/vhost-vsock";

export interface GuestChannelOptions {
  log: Logger;
  /** Whether QEMU guests get a vhost-vsock device on this host (the QEMU driver asks the same question). */
  vhostVsock?: () => boolean;
  serialBusyWaitMs?: number;
  /** Where Firecracker jails are built; a jailed VM's vsock socket is inside its jail. */
  firecrackerChrootBase?: string;
}

/**
 * The one host-side way into a guest port:
 * - Firecracker: its hybrid vsock ("CONNECT <port>"), `<dir>/vsock.sock` or inside the VM's jail (firecrackerSocket).
 * - QEMU on a host with /dev/vhost-vsock: AF_VSOCK to the VM's CID, through `socat` (Node has no
 *   AF_VSOCK). Untested on the development host, which has no /dev/vhost-vsock.
 * - QEMU otherwise: the virtio-serial agent port, `<dir>/agent.sock`. It is one byte stream, so
 *   one session at a time per VM: a second open waits briefly for the first to end, then fails
 *   with CHANNEL_BUSY.
 */
export class SocketGuestChannel implements GuestChannel {
  /** Per VM dir: the end of the virtio-serial session in progress. */
  private readonly serialHeld = new Map<string, Promise<void>>();

  constructor(private readonly o: GuestChannelOptions) {}

  async open(t: ChannelTarget, port: number, opts: { timeoutMs: number; signal?: AbortSignal }): Promise<OpenedStream> {
    const dial = { vm: t.name, timeoutMs: opts.timeoutMs, signal: opts.signal };
    if (t.vmm === "firecracker") {
      return { stream: await dialGuestPort(firecrackerSocket(t.dir, "vsock", this.o.firecrackerChrootBase), "hybrid-vsock", port, dial), via: "hybrid-vsock" };
    }
    if ((this.o.vhostVsock ?? (() => existsSync(VHOST_VSOCK_DEV)))()) return { stream: vhostVsock(t, port), via: "vhost-vsock" };
    return { stream: await this.serial(t, port, dial), via: "virtio-serial" };
  }

  async run(t: ChannelTarget, script: string, opts: { timeoutMs: number; signal?: AbortSignal }): Promise<RunResult> {
    if (t.vmm === "firecracker" || (this.o.vhostVsock ?? (() => existsSync(VHOST_VSOCK_DEV)))()) {
      throw new BangerError("CHANNEL_UNSUPPORTED", `${t.name}'s channel carries streams to guest ports only (vsock)`, { hint: "reach the guest over SSH" });
    }
    const body = wrapScript(script);
    const deadline = Date.now() + opts.timeoutMs;
    let sock: Duplex;
    try {
      sock = await this.serial(t, 0, { vm: t.name, timeoutMs: opts.timeoutMs, signal: opts.signal, run: body.length });
    } catch (e) {
      // The answer of a banger-channel that predates RUN.
      if (e instanceof BangerError && /malformed request/.test(e.message)) {
        throw new BangerError("CHANNEL_UNSUPPORTED", `${t.name}'s banger-channel cannot run scripts (its image predates that)`, {
          hint: "rebuild the image to get the current banger-channel",
        });
      }
      throw e;
    }
    return readRunResult(sock, body, { vm: t.name, timeoutMs: Math.max(1, deadline - Date.now()), signal: opts.signal });
  }

  private async serial(t: ChannelTarget, port: number, dial: { vm: string; timeoutMs: number; signal?: AbortSignal; run?: number }): Promise<Duplex> {
    const held = this.serialHeld.get(t.dir);
    if (held) {
      const wait = this.o.serialBusyWaitMs ?? SERIAL_BUSY_WAIT_MS;
      let timer: NodeJS.Timeout | undefined;
      const freed = await Promise.race([held.then(() => true), new Promise<false>((r) => (timer = setTimeout(() => r(false), wait)))]);
      clearTimeout(timer);
      // Another waiter may have taken it in the meantime.
      if (!freed || this.serialHeld.has(t.dir)) {
        throw new BangerError("CHANNEL_BUSY", `the virtio-serial channel of ${t.name} carries another session (one at a time on QEMU without vhost-vsock)`, {
          hint: "retry when the other session ends, or reach the guest over its IP",
        });
      }
    }
    let release!: () => void;
    this.serialHeld.set(t.dir, new Promise<void>((r) => (release = r)));
    const free = () => {
      this.serialHeld.delete(t.dir);
      release();
    };
    try {
      const sock = await dialGuestPort(join(t.dir, "agent.sock"), "virtio-serial", port, dial);
      sock.once("close", free);
      this.o.log.debug({ vm: t.name, stage: "channel", port }, "virtio-serial session opened");
      return sock;
    } catch (e) {
      free();
      throw e;
    }
  }
}

/** AF_VSOCK to the guest through socat, as one Duplex over its stdio. */
function vhostVsock(t: ChannelTarget, port: number): Duplex {
  const child = spawn("socat", ["-", `VSOCK-CONNECT:${t.vsockCid}:${port}`], { stdio: ["pipe", "pipe", "ignore"] });
  const stream = Duplex.from({ readable: child.stdout, writable: child.stdin });
  stream.once("close", () => child.kill("SIGTERM"));
  child.once("error", (e) =>
    stream.destroy(new BangerError("CHANNEL_FAILED", `cannot run socat for vhost-vsock: ${e.message}`, { hint: "apt-get install socat" })),
  );
  return stream;
}
