import { createServer, connect, type Server, type Socket } from "node:net";
import { BangerError } from "../../domain/errors.js";
import { formatForward, type PortForward } from "../../domain/forwards.js";
import type { Forwarder } from "../../ports/forwarder.js";

/**
 * Port forwards as a relay in bangerd rather than nft DNAT. The default
 * publish address is 127.0.0.1, and DNAT of locally originated traffic to
 * 127.0.0.1 only works with `route_localnet=1` on the outgoing interface plus
 * SNAT, which makes 127/8 routable on that whole interface (a guest could then
 * reach host services bound to loopback). A relay keeps loopback loopback,
 * binds exactly the address asked for, and fails with EADDRINUSE like any
 * server would. The cost is a copy through user space, fine for dev servers.
 */

const CONNECT_TIMEOUT_MS = 10_000;

export interface ProxyLog {
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
}

interface Open {
  forward: PortForward;
  server: Server;
  conns: Set<Socket>;
}

const key = (address: string, port: number) => `${address}:${port}`;

export class TcpProxy implements Forwarder {
  private readonly open_ = new Map<string, Open>();

  constructor(private readonly log: ProxyLog) {}

  async open(f: PortForward, guestIp: string): Promise<void> {
    const k = key(f.hostAddress, f.hostPort);
    const have = this.open_.get(k);
    if (have && have.forward.vmId === f.vmId && have.forward.guestPort === f.guestPort) return;
    if (have) throw inUse(f, "it is forwarded to another guest port or VM");
    const conns = new Set<Socket>();
    const server = createServer({ pauseOnConnect: true, allowHalfOpen: true }, (client) => this.relay(client, f, guestIp, conns));
    await new Promise<void>((resolve, reject) => {
      server.once("error", (e: NodeJS.ErrnoException) => {
        if (e.code === "EADDRINUSE") reject(inUse(f, "another program (or forward) listens there"));
        else if (e.code === "EADDRNOTAVAIL")
          reject(
            new BangerError("BAD_REQUEST", `cannot publish on ${f.hostAddress}: not an address of this host`, {
              hint: "use 127.0.0.1, 0.0.0.0 or an address `ip addr` lists",
            }),
          );
        else if (e.code === "EACCES") reject(new BangerError("BAD_REQUEST", `not allowed to listen on ${k}: ${e.message}`));
        else reject(new BangerError("NETWORK_FAILED", `cannot listen on ${k}: ${e.message}`));
      });
      server.listen({ host: f.hostAddress, port: f.hostPort, exclusive: true }, () => resolve());
    });
    server.on("error", (e) => this.log.warn({ vm: f.vmId, forward: formatForward(f), err: e.message }, "port forward listener error"));
    this.open_.set(k, { forward: { ...f }, server, conns });
    this.log.info({ vm: f.vmId, forward: formatForward(f), guest: guestIp }, "port forward listening");
  }

  private relay(client: Socket, f: PortForward, guestIp: string, conns: Set<Socket>): void {
    // Half-open both ways: a client that sends a request and shuts its side still gets the whole answer.
    const upstream = connect({ host: guestIp, port: f.guestPort, allowHalfOpen: true });
    conns.add(client);
    conns.add(upstream);
    const timer = setTimeout(() => upstream.destroy(new Error("connect timeout")), CONNECT_TIMEOUT_MS);
    // A stopped guest refuses or times out: the client sees its connection closed, as with any dead backend.
    const fail = () => {
      client.destroy();
      upstream.destroy();
    };
    upstream.once("connect", () => {
      clearTimeout(timer);
      client.pipe(upstream);
      upstream.pipe(client);
      client.resume();
    });
    upstream.on("error", fail);
    client.on("error", fail);
    for (const s of [client, upstream]) {
      s.on("close", () => {
        clearTimeout(timer);
        conns.delete(s);
        // Once one side is fully closed nothing more can flow; do not leave the other open.
        if (s === upstream && !upstream.connecting) client.end();
        if (s === client) upstream.end();
      });
    }
  }

  async close(hostAddress: string, hostPort: number): Promise<void> {
    const k = key(hostAddress, hostPort);
    const o = this.open_.get(k);
    if (!o) return;
    this.open_.delete(k);
    for (const s of o.conns) s.destroy();
    await new Promise<void>((resolve) => o.server.close(() => resolve()));
    this.log.info({ vm: o.forward.vmId, forward: formatForward(o.forward) }, "port forward closed");
  }

  active(): PortForward[] {
    return [...this.open_.values()].map((o) => ({ ...o.forward }));
  }

  async closeAll(): Promise<void> {
    for (const f of this.active()) await this.close(f.hostAddress, f.hostPort);
  }
}

function inUse(f: PortForward, why: string): BangerError {
  return new BangerError("PORT_IN_USE", `host port ${f.hostAddress}:${f.hostPort} is not free: ${why}`, {
    hint: "pick another host port (-p <other>:" + f.guestPort + "), or stop what listens there",
  });
}
