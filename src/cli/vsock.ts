#!/usr/bin/env node
// banger-vsock <vm> <port>: stdio <-> a guest port, over bangerd's guest channel (vsock or
// virtio-serial, never the guest network). Made to be an ssh ProxyCommand, so it starts fast:
// no commander, no config validation, one HTTP Upgrade on bangerd's socket.
//   --socket PATH      bangerd's socket (default: as `banger` resolves it)
//   --config PATH      config file to read `socket` from
//   --tcp HOST:PORT    also try this TCP address and keep whichever answers first
//   -v                 say on stderr which path answered
//   --creating         also while the VM is being created (bangerd's own re-identity of a restored guest)
import { request } from "node:http";
import { connect, type Socket } from "node:net";
import { setTimeout as sleep } from "node:timers/promises";
import { quickSocket } from "./socket.js";

/** How long the IP gets before the channel is tried too (RFC 8305's connection attempt delay). */
const CHANNEL_HEAD_START_MS = 250;
const USAGE = "usage: banger-vsock [--socket PATH] [--config PATH] [--tcp HOST:PORT] [--creating] [-v] <vm> <port>";

function fail(message: string, hint?: string): never {
  process.stderr.write(`banger-vsock: ${message}\n${hint ? `hint: ${hint}\n` : ""}`);
  process.exit(1);
}

interface Args {
  vm: string;
  port: string;
  socket?: string;
  config?: string;
  tcp?: { host: string; port: number };
  verbose: boolean;
  creating?: boolean;
}

function parseArgs(argv: string[]): Args {
  const rest: string[] = [];
  const out: Partial<Args> = { verbose: false };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    const value = () => argv[++i] ?? fail(`${a} needs a value`, USAGE);
    if (a === "--socket") out.socket = value();
    else if (a === "--config") out.config = value();
    else if (a === "--tcp") {
      const m = /^(.+):(\d{1,5})$/.exec(value());
      if (!m) fail(`--tcp takes HOST:PORT`, USAGE);
      out.tcp = { host: m[1]!, port: Number(m[2]) };
    } else if (a === "-v") out.verbose = true;
    else if (a === "--creating") out.creating = true;
    else if (a === "-h" || a === "--help") {
      process.stdout.write(`${USAGE}\n`);
      process.exit(0);
    } else if (a.startsWith("-")) fail(`unknown option ${a}`, USAGE);
    else rest.push(a);
  }
  if (rest.length !== 2) fail("needs a VM name and a guest port", USAGE);
  if (!/^\d{1,5}$/.test(rest[1]!) || Number(rest[1]) < 1 || Number(rest[1]) > 65535) fail(`port must be 1-65535, got ${rest[1]}`, USAGE);
  return { ...(out as Args), vm: rest[0]!, port: rest[1]! };
}

type Won = { sock: Socket; via: string; head?: Buffer };

/** The guest channel through bangerd: resolves once bangerd answered 101. */
function viaChannel(socketPath: string, a: Args, cancel: AbortSignal): Promise<Won> {
  return new Promise((resolve, reject) => {
    const req = request({
      socketPath,
      path: `/v1/vms/${encodeURIComponent(a.vm)}/connect?port=${a.port}${a.creating ? "&creating=1" : ""}`,
      headers: { Connection: "Upgrade", Upgrade: "banger-stream" },
      agent: false,
      signal: cancel,
    });
    req.on("upgrade", (res, sock: Socket, head: Buffer) => resolve({ sock, head, via: `channel (${String(res.headers["banger-via"] ?? "?")})` }));
    req.on("response", (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (c: Buffer) => chunks.push(c));
      res.on("end", () => {
        let err: { code?: string; message?: string; hint?: string } = {};
        try {
          err = (JSON.parse(Buffer.concat(chunks).toString("utf8")) as { error?: typeof err }).error ?? {};
        } catch {
          // not our envelope
        }
        reject(Object.assign(new Error(`${err.message ?? `HTTP ${res.statusCode}`}${err.code ? ` (${err.code})` : ""}`), { hint: err.hint }));
      });
    });
    req.on("error", (e: NodeJS.ErrnoException) => {
      if (cancel.aborted) return reject(e);
      const hint = e.code === "EACCES" ? "join the `banger` group or run as the daemon's user" : "start it with `banger daemon start`";
      reject(Object.assign(new Error(`cannot reach bangerd at ${socketPath}: ${e.code ?? e.message}`), { hint }));
    });
    req.end();
  });
}

function viaTcp(host: string, port: number, cancel: AbortSignal): Promise<Won> {
  return new Promise((resolve, reject) => {
    const sock = connect({ host, port, signal: cancel });
    sock.once("connect", () => resolve({ sock, via: `ip (${host}:${port})` }));
    sock.once("error", (e) => reject(new Error(`${host}:${port}: ${e.message}`)));
  });
}

async function main(): Promise<void> {
  const t0 = performance.now();
  const a = parseArgs(process.argv.slice(2));
  const socketPath = a.socket ?? quickSocket({ config: a.config });
  if (!socketPath) fail("cannot tell where bangerd's socket is from the config file", "pass --socket PATH");
  const cancelChannel = new AbortController();
  const cancelTcp = new AbortController();
  const tries: Promise<Won>[] = [];
  let ipConnected = false;
  if (a.tcp) {
    const tcp = viaTcp(a.tcp.host, a.tcp.port, cancelTcp.signal);
    tries.push(tcp);
    // Happy eyeballs: a live guest's IP connects in a millisecond; the channel only starts when it
    // has not (or has failed), so the common case costs the guest no second session.
    ipConnected = await Promise.race([
      tcp.then(
        () => true,
        () => false,
      ),
      sleep(CHANNEL_HEAD_START_MS).then(() => false),
    ]);
  }
  if (!ipConnected) tries.push(viaChannel(socketPath, a, cancelChannel.signal));
  let won: Won;
  try {
    won = await Promise.any(tries);
  } catch (e) {
    const errs = (e as AggregateError).errors as (Error & { hint?: string })[];
    fail(errs.map((x) => x.message).join("; "), errs.find((x) => x.hint)?.hint);
  }
  // The slower path is dropped, opened or not.
  (won.via.startsWith("channel") ? cancelTcp : cancelChannel).abort();
  for (const t of tries) void t.then((w) => w.sock !== won.sock && w.sock.destroy()).catch(() => undefined);
  if (a.verbose) process.stderr.write(`banger-vsock: ${a.vm}:${a.port} via ${won.via} in ${Math.round(performance.now() - t0)} ms\n`);
  const { sock } = won;
  sock.setNoDelay(true);
  if (won.head && won.head.length > 0) process.stdout.write(won.head);
  sock.pipe(process.stdout);
  process.stdin.pipe(sock);
  sock.on("error", (e) => fail(`the stream broke: ${e.message}`));
  sock.once("close", () => process.exit(0));
}

void main();
