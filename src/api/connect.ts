import type { IncomingMessage } from "node:http";
import type { Socket } from "node:net";
import type { Duplex } from "node:stream";
import type { AppDeps } from "../app/deps.js";
import { openGuestPort } from "../app/guest-connect.js";
import { BangerError, asBangerError } from "../domain/errors.js";
import { ROOT_CALLER, requireMember, requireOwner, type Caller } from "../domain/caller.js";
import { getVm } from "../app/vm-lookup.js";
import type { ChannelMetrics } from "../ports/metrics.js";

/** Who may open a stream: the same rule as the HTTP routes (group member, and the VM's owner or root). */
export interface ConnectAccess {
  identify(socket: Socket): Promise<Caller>;
  apiGroup: { name: string; gid: number | undefined };
}

/** The protocol name of a guest stream on bangerd's socket (`Upgrade: banger-stream`). */
export const STREAM_PROTOCOL = "banger-stream";
const ROUTE = /^\/v1\/vms\/([^/?]+)\/connect$/;

function refuse(socket: Duplex, err: BangerError): void {
  const body = JSON.stringify({ error: err.toJSON() });
  socket.end(
    `HTTP/1.1 ${err.status} ${err.code}\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`,
  );
}

/**
 * `GET /v1/vms/:name/connect?port=P` with `Connection: Upgrade` and `Upgrade: banger-stream`:
 * 101, then the connection carries the bytes of guest port P over the guest channel, both
 * ways, until either side closes. Through bangerd rather than the VM's own socket so VM
 * directories stay root-only and members of the `banger` group (who may use bangerd's socket)
 * can reach their guests. Errors are the usual JSON envelope with the usual statuses.
 */
export function connectUpgrade(d: Pick<AppDeps, "store" | "channel" | "log">, access?: ConnectAccess, metrics?: ChannelMetrics) {
  return (req: IncomingMessage, socket: Duplex, head: Buffer): void => {
    // A client that hangs up while the channel opens (ssh giving up, wait-ssh's other path winning)
    // makes the refusal's write fail with EPIPE; unhandled, that 'error' event would end bangerd.
    socket.on("error", () => socket.destroy());
    void bridge(d, req, socket as Socket, head, access, metrics).catch((e: unknown) => {
      d.log.warn({ err: (e as Error).message, stage: "connect" }, "guest stream failed");
      if (!socket.destroyed) refuse(socket, asBangerError(e));
    });
  };
}

async function bridge(
  d: Pick<AppDeps, "store" | "channel" | "log">,
  req: IncomingMessage,
  client: Socket,
  head: Buffer,
  access?: ConnectAccess,
  metrics?: ChannelMetrics,
): Promise<void> {
  const url = new URL(req.url ?? "/", "http://bangerd");
  const m = ROUTE.exec(url.pathname);
  if (!m)
    return refuse(
      client,
      new BangerError("NOT_FOUND", `no upgrade route ${req.method} ${url.pathname}`, { hint: "docs/api.md: GET /v1/vms/:name/connect?port=P" }),
    );
  if (req.method !== "GET" || String(req.headers.upgrade ?? "").toLowerCase() !== STREAM_PROTOCOL) {
    return refuse(client, new BangerError("BAD_REQUEST", `connect takes GET with Upgrade: ${STREAM_PROTOCOL}`, { hint: "docs/api.md describes the route" }));
  }
  // An Upgrade never reaches the Hono routes, so their access rule is applied here: a stream
  // to a guest port is as good as `vm ssh`, which only the owner (or root) may do.
  const caller = access ? await access.identify(client) : ROOT_CALLER;
  if (access) requireMember(caller, access.apiGroup.gid, access.apiGroup.name);
  requireOwner(caller, getVm(d, decodeURIComponent(m[1]!)), "connect to");
  // The client going away while the channel opens cancels the open.
  const abort = new AbortController();
  const onGone = () => abort.abort();
  client.once("close", onGone);
  const { stream, via } = await openGuestPort(d, decodeURIComponent(m[1]!), url.searchParams.get("port"), abort.signal, {
    creating: url.searchParams.get("creating") === "1",
  });
  client.off("close", onGone);
  if (client.destroyed) {
    stream.destroy();
    return;
  }
  client.setNoDelay(true);
  client.write(`HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: ${STREAM_PROTOCOL}\r\nBanger-Via: ${via}\r\n\r\n`);
  if (head.length > 0) stream.write(head);
  stream.pipe(client);
  client.pipe(stream);
  let open = metrics !== undefined;
  if (metrics) {
    metrics.opened();
    if (head.length > 0) metrics.bytes("to_guest", head.length);
    // Beside the pipes, not instead of them: each chunk is counted as it passes.
    client.on("data", (b: Buffer) => metrics.bytes("to_guest", b.length));
    stream.on("data", (b: Buffer) => metrics.bytes("from_guest", b.length));
  }
  const end = () => {
    if (open) {
      open = false;
      metrics?.closed();
    }
    stream.destroy();
    client.destroy();
  };
  // After the 101 the client only sees its stream end; the log keeps why (CHANNEL_UNAVAILABLE when banger-agent died).
  stream.on("error", (e: Error) => {
    const err = asBangerError(e);
    d.log.warn({ vm: decodeURIComponent(m[1]!), stage: "connect", code: err.code, err: err.message }, "guest stream broke");
    end();
  });
  client.on("error", end);
  stream.once("close", end);
  client.once("close", end);
}
