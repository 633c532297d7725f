// Firecracker's hybrid vsock, host side (../shared/reference/firecracker-docs/vsock.md).
// The device's uds_path is an AF_UNIX listener. A host program connects, sends
// "CONNECT <port>\n", and Firecracker forwards the stream to the guest program listening on
// that vsock port, answering "OK <host port>\n" first; with no listener (the guest answers
// with a reset) it closes the connection. Firecracker parses the line like this (its muxer):
// at most 32 bytes up to '\n', whitespace-separated words, the first "connect" in any case,
// the second a u32; anything else and the connection is dropped without a word.
// Guest-initiated connections go the other way, to the UDS at "<uds_path>_<port>".
//
// The modelled guest listeners come from FAKE_FC_VSOCK_LISTEN ("22=tcp:127.0.0.1:2222,
// 52=unix:/path"): a vsock port and where its guest program is. With FAKE_FC_BOOT=qemu,
// port 22 reaches the real guest's banger-agent (or legacy banger-channel) through its virtio-serial agent port.
// FAKE_FC_VSOCK_GUEST ("5000=tcp:127.0.0.1:7000") models guest programs that connect out:
// each connection accepted on the TCP address is a guest connect to host port 5000.
import { existsSync } from "node:fs";
import { connect, createServer } from "node:net";
import { dirname, join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import pino from "pino";

const LINE_MAX = 32;
// Firecracker hands out host-side ports from 2^30 up (the docs' example answers "OK 1073741824").
const FIRST_HOST_PORT = 1 << 30;
const GUEST_CONNECT_MS = 5_000;
const repoRoot = join(dirname(fileURLToPath(import.meta.url)), "../../..");

/** The port of a CONNECT line as Firecracker reads it, or null when it would drop the connection. */
export function parseConnectLine(line) {
  const words = line.split(/\s+/).filter(Boolean);
  if (words.length < 2 || words[0].toLowerCase() !== "connect") return null;
  // Rust's u32 parse: decimal digits, an optional leading '+', at most 2^32 - 1.
  if (!/^\+?\d+$/.test(words[1])) return null;
  const port = Number(words[1]);
  return port <= 0xffffffff ? port : null;
}

/** "22=tcp:127.0.0.1:2222,52=unix:/p" -> Map(port -> { kind, host, port } | { kind, path }). Throws on anything else. */
export function parseEndpoints(spec, name) {
  const out = new Map();
  for (const item of (spec ?? "").split(",").filter(Boolean)) {
    const m = /^(\d+)=(?:tcp:(.+):(\d+)|unix:(\/.+)|(serial))$/.exec(item);
    if (!m) throw new Error(`${name}: ${JSON.stringify(item)} is not PORT=tcp:HOST:PORT, PORT=unix:/PATH or PORT=serial`);
    out.set(Number(m[1]), m[5] ? { kind: "serial" } : m[4] ? { kind: "unix", path: m[4] } : { kind: "tcp", host: m[2], port: Number(m[3]) });
  }
  return out;
}

/** Resolves with a connected socket to the modelled guest program, or null when none listens. */
function dialGuest(endpoint, port, serialSocket) {
  if (endpoint.kind === "serial") return dialSerial(serialSocket, port);
  return new Promise((resolve) => {
    const s = endpoint.kind === "tcp" ? connect(endpoint.port, endpoint.host) : connect(endpoint.path);
    const timer = setTimeout(() => s.destroy(), GUEST_CONNECT_MS);
    s.once("connect", () => {
      clearTimeout(timer);
      resolve(s);
    });
    s.once("error", () => resolve(null));
    s.once("close", () => resolve(null));
  });
}

/**
 * The real guest's agent on its virtio-serial port, reached through bangerd's own host side
 * (SocketGuestChannel, compiled to build/runtime): banger-agent's multiplex, or the legacy sh
 * banger-channel of older images. One channel per agent socket, so streams share its session.
 */
const channels = new Map();
async function dialSerial(path, port) {
  if (!path) return null;
  let channel = channels.get(path);
  if (!channel) {
    const built = join(repoRoot, "build/runtime/adapters/channel/guest-channel.js");
    if (!existsSync(built)) throw new Error(`${built} is missing; run \`npx tsc -p tsconfig.json\` in ${repoRoot} first`);
    const { SocketGuestChannel } = await import(pathToFileURL(built).href);
    channel = new SocketGuestChannel({ log: pino({ level: "silent" }), vhostVsock: () => false, serialPath: () => path });
    channels.set(path, channel);
  }
  try {
    const { stream } = await channel.open({ name: "fake", vmm: "qemu", dir: dirname(path), vsockCid: 0 }, port, { timeoutMs: GUEST_CONNECT_MS });
    return stream;
  } catch {
    return null;
  }
}

function splice(a, b) {
  a.pipe(b);
  b.pipe(a);
  const end = () => {
    a.destroy();
    b.destroy();
  };
  a.once("close", end);
  b.once("close", end);
  a.on("error", end);
  b.on("error", end);
}

/**
 * @param {object} o
 * @param {Map<number, object>} o.listeners modelled guest listeners (vsock port -> endpoint)
 * @param {() => boolean} o.guestRunning vsock traffic flows only while the guest runs
 * @param {() => string | undefined} o.serialSocket the virtio-serial agent socket of a real guest
 * @param {(line: string) => void} o.log
 * @returns {import("node:net").Server} the uds_path listener
 */
export function createHybridVsockServer(o) {
  let nextHostPort = FIRST_HOST_PORT;
  return createServer((host) => {
    let buf = Buffer.alloc(0);
    const onData = (chunk) => {
      buf = Buffer.concat([buf, chunk]);
      const nl = buf.indexOf(0x0a);
      if (nl < 0 && buf.length < LINE_MAX) return;
      host.off("data", onData);
      host.pause();
      const line = nl >= 0 && nl < LINE_MAX ? buf.subarray(0, nl).toString("latin1") : null;
      const rest = nl >= 0 ? buf.subarray(nl + 1) : Buffer.alloc(0);
      const port = line === null ? null : parseConnectLine(line);
      if (port === null) {
        o.log(`vsock: dropped a host connection: ${line === null ? `no newline in the first ${LINE_MAX} bytes` : `bad request ${JSON.stringify(line)}`}`);
        return host.destroy();
      }
      const endpoint = o.listeners.get(port);
      if (!o.guestRunning() || !endpoint) {
        o.log(`vsock: CONNECT ${port}: nothing listens in the guest; closing (reset)`);
        return host.destroy();
      }
      void dialGuest(endpoint, port, o.serialSocket()).then((guest) => {
        if (!guest || host.destroyed) {
          guest?.destroy();
          if (!guest) o.log(`vsock: CONNECT ${port}: the guest program did not accept; closing`);
          return host.destroy();
        }
        const hostPort = nextHostPort++;
        host.write(`OK ${hostPort}\n`);
        if (rest.length > 0) guest.write(rest);
        splice(host, guest);
        host.resume();
      });
    };
    host.on("data", onData);
    host.on("error", () => host.destroy());
  });
}

/** Guest programs connecting out (FAKE_FC_VSOCK_GUEST): each is forwarded to "<uds_path>_<port>", or reset. */
export async function listenGuestInitiated(endpoints, udsPath, log) {
  const servers = [];
  for (const [port, ep] of endpoints) {
    if (ep.kind !== "tcp") throw new Error("FAKE_FC_VSOCK_GUEST: guest programs are modelled as tcp:HOST:PORT addresses");
    const server = createServer((guest) => {
      const host = connect(`${udsPath()}_${port}`);
      host.once("connect", () => splice(guest, host));
      host.once("error", (e) => {
        log(`vsock: guest connect to host port ${port}: ${e.code ?? e.message}; reset`);
        guest.destroy();
      });
    });
    await new Promise((resolve, reject) => {
      server.once("error", reject);
      server.listen(ep.port, ep.host, resolve);
    });
    servers.push(server);
  }
  return servers;
}
