/**
 * Host-side networking owned by bangerd: one bridge, TAP devices on it,
 * and nftables tables `inet banger` / `bridge banger` for NAT and guest isolation.
 * Every method is idempotent so undo and reconciliation can call it blindly.
 */
export interface NetworkStatus {
  bridge: { name: string; exists: boolean; up: boolean; address?: string };
  ipForward: boolean;
  natTable: boolean;
  uplink?: string;
  natAddresses: string[];
  taps: string[];
  poolIdle: string[];
  isolation: {
    /** banger's input chain drops what guests send to the host. */
    inputDrop: boolean;
    /** The bridge-family table that keeps guests' frames apart is loaded. */
    bridgeFilter: boolean;
    /** banger TAPs on the bridge without port isolation (peered guests, or something undid it). */
    unisolatedTaps: string[];
    /** Peer set elements, `tapA . tapB`, both directions. */
    peers: string[];
  };
}

export interface Network {
  /** Bridge with the gateway address up, base nft table in place. */
  ensureHost(): Promise<void>;
  /** The warm TAP pool from memory (no host command): idle devices, the configured size, acquires it could not serve. */
  poolStats(): { idle: number; size: number; misses: number };
  /** A TAP attached to the bridge and up. From the warm pool when one is idle. */
  acquireTap(vmId: string): Promise<string>;
  /**
   * Back to the pool when there is room and it is a pool device, deleted otherwise.
   * Only the VM that acquired it may release it; a second release is a no-op.
   */
  releaseTap(tap: string, vmId: string): Promise<void>;
  enableNat(guestIp: string): Promise<void>;
  disableNat(guestIp: string): Promise<void>;
  /**
   * The TAP pairs whose guests may exchange frames; replaces the whole set.
   * Calls apply in call order, so compute the pairs and call without awaiting in between.
   */
  setPeers(pairs: ReadonlyArray<readonly [string, string]>): Promise<void>;
  status(): Promise<NetworkStatus>;
  /** Names of TAP devices on the host that banger created (pool and per-VM). */
  listTaps(): Promise<string[]>;
  /**
   * Daemon start: take over existing devices. TAPs in `inUse` stay assigned to
   * their VMs; idle tap-pool-* devices become pool capacity; any other banger TAP is deleted.
   */
  adopt(inUse: { tap: string; vmId: string }[]): Promise<void>;
  /** Stop background work (pool refill). */
  close(): Promise<void>;
}
