import type { VmmKind } from "../domain/types.js";

/** How a stream reached the guest: Firecracker's hybrid vsock, QEMU's vhost-vsock, or QEMU's virtio-serial port. */
export type ChannelVia = "hybrid-vsock" | "vhost-vsock" | "virtio-serial";

/** What the channel needs to know about one running VM. */
export interface ChannelTarget {
  name: string;
  vmm: VmmKind;
  /** The VM directory; the VMM's channel socket lives in it. */
  dir: string;
  vsockCid: number;
}

/**
 * A connected byte stream (a node Duplex), named structurally so ports stay free of node imports.
 * It is handed over paused, so no byte is lost before the caller listens: pipe() or resume() it.
 */
export interface GuestStream extends NodeJS.ReadWriteStream {
  destroy(error?: Error): this;
}

export interface OpenedStream {
  stream: GuestStream;
  via: ChannelVia;
}

/**
 * "Open a byte stream to guest port P", whatever carries it. The guest's banger-channel
 * service answers (images/debian/files/usr/local/sbin/banger-channel); the network plays no part.
 * Rejects with a coded error: CHANNEL_FAILED (nothing listens, no channel, the VMM went away),
 * CHANNEL_BUSY (virtio-serial carries one session at a time), TIMEOUT, CANCELLED.
 */
export interface GuestChannel {
  open(target: ChannelTarget, port: number, opts: { timeoutMs: number; signal?: AbortSignal }): Promise<OpenedStream>;
}
