import type { PortForward } from "../domain/forwards.js";

/**
 * Host → guest TCP forwards that bangerd serves itself (src/adapters/net/tcp-proxy.ts).
 * What is stored is the store's business; this is only what listens now.
 */
export interface Forwarder {
  /** Listen on hostAddress:hostPort and relay every connection to guestIp:guestPort. PORT_IN_USE when the port is taken. Idempotent. */
  open(f: PortForward, guestIp: string): Promise<void>;
  /** Stop listening and cut its connections; a forward that is not open is a no-op. */
  close(hostAddress: string, hostPort: number): Promise<void>;
  /** What listens right now. */
  active(): PortForward[];
  closeAll(): Promise<void>;
}
