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
 * CHANNEL_BUSY (the legacy virtio-serial channel carries one session at a time; banger-agent's
 * multiplex only at its per-VM stream cap), CHANNEL_UNAVAILABLE (banger-agent stopped answering),
 * TIMEOUT, CANCELLED.
 */
export interface GuestChannel {
  open(target: ChannelTarget, port: number, opts: { timeoutMs: number; signal?: AbortSignal }): Promise<OpenedStream>;
  /**
   * Run a root shell script in the guest through the channel itself, no SSH: bangerd's own use (a
   * clone's re-identity, where a handshake would cost more than the work). The script runs whole or
   * not at all. Rejects with CHANNEL_UNSUPPORTED where the transport or the guest's banger-channel
   * cannot (Firecracker's vsock, vhost-vsock, images older than the verb): the caller falls back to SSH.
   */
  run(target: ChannelTarget, script: string, opts: { timeoutMs: number; signal?: AbortSignal }): Promise<RunResult>;
  /**
   * Readiness pushed from the guest's banger-agent: LISTEN per port as it starts listening, then
   * READY; the iteration ends when the caller stops or the channel fails (a coded error). Rejects
   * with CHANNEL_UNSUPPORTED where the transport or image cannot (the caller polls instead).
   */
  ready(target: ChannelTarget, ports: number[], opts: { timeoutMs: number; signal?: AbortSignal }): Promise<AsyncIterable<ReadyEvent>>;

  /**
   * Ends this host's session with the guest's agent, if one is open: the agent sees the hangup and
   * waits for the next host with a fresh HELLO. A golden VM must be snapshotted in that state, or
   * its clones wake up believing a host they never had is still mid-session.
   */
  release(target: ChannelTarget): void;
}

/** What banger-agent's READY verb reports: each awaited port as it starts listening, then all of them. */
export type ReadyEvent = { kind: "listen"; port: number } | { kind: "ready" };

export interface RunResult {
  code: number;
  /** The script's stdout and stderr, interleaved, by line (the last lines if it said a lot). */
  lines: string[];
}
