#!/usr/bin/env node
// A stand-in `firecracker` for tests on hosts without one. It serves the
// Firecracker HTTP API on a UNIX socket, validates every request against the
// real Swagger spec (../shared/reference/firecracker-api.yaml; FAKE_FC_SPEC=none
// routes without it) and the semantic rules in vmm-state.mjs, and records each
// call as a JSON line. Environment: FAKE_FC_SPEC, FAKE_FC_CALLS,
// FAKE_FC_CHECK_TAP=1, FAKE_FC_ALLOW_UNKNOWN_FIELDS=1, FAKE_FC_CTRL_ALT_DEL,
// FAKE_FC_BOOT=qemu (+ FAKE_FC_QEMU_BIN, FAKE_FC_QEMU_ACCEL), FAKE_FC_VSOCK_LISTEN,
// FAKE_FC_VSOCK_GUEST (hybrid-vsock.mjs), FAKE_FC_CHROOT (set by the fake jailer); SIGUSR1/SIGUSR2
// model an in-guest poweroff/reboot. docs/reference/firecracker.md describes them.
import { appendFileSync, existsSync } from "node:fs";
import { createServer } from "node:http";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const VERSION = "1.16.1";
const here = dirname(fileURLToPath(import.meta.url));
const repoRoot = resolve(here, "../../..");

function die(code, message) {
  process.stderr.write(`${message}\n`);
  process.exit(code);
}

// The jailer execs firecracker with `--id=<id> --start-time-us=<n> --start-time-cpu-us=<n>`.
const VALUE_ARGS = ["--api-sock", "--id", "--start-time-us", "--start-time-cpu-us"];

function parseArgs(argv) {
  const out = { apiSock: undefined, id: "anonymous-instance", version: false };
  for (let i = 0; i < argv.length; i++) {
    const eq = argv[i].indexOf("=");
    const a = argv[i].startsWith("--") && eq > 0 ? argv[i].slice(0, eq) : argv[i];
    if (a === "--version") out.version = true;
    else if (VALUE_ARGS.includes(a)) {
      const v = a === argv[i] ? argv[++i] : argv[i].slice(eq + 1);
      if (v === undefined || v.startsWith("--")) die(1, `Arguments parsing error: argument '${a}' requires a value.`);
      if (a === "--api-sock") out.apiSock = v;
      else if (a === "--id") out.id = v;
      else if (!/^\d+$/.test(v)) die(1, `Arguments parsing error: invalid value '${v}' for '${a}'.`);
    } else {
      die(1, `Arguments parsing error: Found argument '${a}' which wasn't expected, or isn't valid in this context.`);
    }
  }
  return out;
}

const args = parseArgs(process.argv.slice(2));
// Set by the fake jailer, which cannot pivot_root a node script: the jail root this process would
// see as "/". The API socket and every path the API names are resolved under it.
const chroot = process.env.FAKE_FC_CHROOT;
const inJail = (p) => (chroot ? join(chroot, resolve("/", p)) : p);
const PATH_FIELDS = ["kernel_image_path", "initrd_path", "path_on_host", "uds_path", "log_path", "metrics_path"];
const hostPaths = (body) =>
  chroot && body && typeof body === "object" ? Object.fromEntries(Object.entries(body).map(([k, v]) => [k, PATH_FIELDS.includes(k) && typeof v === "string" ? inJail(v) : v])) : body;
if (args.version) {
  process.stdout.write(`Firecracker v${VERSION} (fake)\n`);
  process.exit(0);
}
// Firecracker's instance id rule: alphanumerics and '-', 1 to 64 characters.
if (!/^[A-Za-z0-9-]{1,64}$/.test(args.id)) die(1, `Invalid instance ID: ${JSON.stringify(args.id)} (alphanumerics and '-', 1 to 64 characters)`);
// Real firecracker would default to /run/firecracker.socket; a test double must never touch that.
if (!args.apiSock) die(1, "fake firecracker: --api-sock PATH is required");
args.apiSock = inJail(args.apiSock);
if (existsSync(args.apiSock)) die(1, `Failed to open the API socket at ${args.apiSock}: Address in use (remove the stale socket first)`);

const CTRL_ALT_DEL = ["reboot", "poweroff", "ignore"];
const ctrlAltDel = process.env.FAKE_FC_CTRL_ALT_DEL || "reboot";
if (!CTRL_ALT_DEL.includes(ctrlAltDel)) die(1, `fake firecracker: FAKE_FC_CTRL_ALT_DEL=${ctrlAltDel} is not one of ${CTRL_ALT_DEL.join(", ")}`);

// "none": no schema validation, only the routes the fake implements. A missing spec file is
// otherwise an error: silently validating less would make a passing test mean less.
const specless = process.env.FAKE_FC_SPEC === "none";
const specPath = process.env.FAKE_FC_SPEC || resolve(repoRoot, "../shared/reference/firecracker-api.yaml");
if (!specless && !existsSync(specPath)) {
  die(2, `fake firecracker: API spec not found at ${specPath}; set FAKE_FC_SPEC (or FAKE_FC_SPEC=none) or provide ../shared/reference/firecracker-api.yaml`);
}

const { FakeVmm, fault } = await import("./vmm-state.mjs");
const spec = specless
  ? (await import("./routes.mjs")).builtinSpec()
  : (await import("./spec.mjs")).loadSpec(specPath, { allowUnknownFields: process.env.FAKE_FC_ALLOW_UNKNOWN_FIELDS === "1" });
const callsFile = process.env.FAKE_FC_CALLS || `${args.apiSock}.calls.jsonl`;

function consoleLine(line) {
  process.stdout.write(`${line}\n`);
}

let boot = null;
let exiting = false;
function exit(code) {
  if (exiting) return;
  exiting = true;
  boot?.kill();
  process.exit(code);
}

if (process.env.FAKE_FC_BOOT === "qemu") {
  const { createQemuBoot } = await import("./qemu-boot.mjs");
  boot = createQemuBoot({ repoRoot, apiSock: args.apiSock, id: args.id, console: consoleLine, exit });
} else if (process.env.FAKE_FC_BOOT) {
  die(1, `fake firecracker: FAKE_FC_BOOT=${process.env.FAKE_FC_BOOT} is not supported (only "qemu")`);
}

const { parseEndpoints, listenGuestInitiated } = await import("./hybrid-vsock.mjs");
let vsockListeners;
let vsockGuest;
try {
  vsockListeners = parseEndpoints(process.env.FAKE_FC_VSOCK_LISTEN, "FAKE_FC_VSOCK_LISTEN");
  vsockGuest = parseEndpoints(process.env.FAKE_FC_VSOCK_GUEST, "FAKE_FC_VSOCK_GUEST");
} catch (e) {
  die(1, `fake firecracker: ${e.message}`);
}
// A real guest (banger images) serves vsock port 22 with banger-channel, reached over its virtio-serial port.
if (boot && !vsockListeners.has(22)) vsockListeners.set(22, { kind: "serial" });

const vmm = new FakeVmm({ id: args.id, vsockListeners, version: VERSION, checkTap: process.env.FAKE_FC_CHECK_TAP === "1", boot, exit, console: consoleLine, ctrlAltDel });

function record(entry) {
  try {
    appendFileSync(callsFile, `${JSON.stringify({ ...entry, at: new Date().toISOString() })}\n`);
  } catch (e) {
    process.stderr.write(`fake firecracker: cannot record to ${callsFile}: ${e.message}\n`);
  }
}

async function respond(method, url, raw) {
  const path = url.split("?")[0];
  const found = spec.route(method, path);
  if (!found.route) {
    // Real Firecracker answers unknown paths and methods with 400, not 404/405.
    return { result: fault("path-and-method-in-spec", `Invalid request method and/or path: ${method} ${path}.`) };
  }
  const route = found.route;
  let body;
  if (raw.length > 0) {
    if (method === "GET") return { route, result: fault("get-has-no-body", "GET request cannot have a body.") };
    try {
      body = JSON.parse(raw);
    } catch (e) {
      return { route, result: fault("body-is-json", `An error occurred when deserializing the json body of a request: ${e.message}.`) };
    }
  } else if (method !== "GET") {
    return { route, result: fault("body-required", `Empty ${method} request.`) };
  }
  if (route.validate && !route.validate(body)) {
    const detail = spec.errorsText(route.validate.errors);
    return { route, body, result: fault("schema", `An error occurred when deserializing the json body of a request: ${detail}.`) };
  }
  return { route, body, result: await vmm.handle(route, hostPaths(body) ?? {}) };
}

// Firecracker's API thread handles one request at a time; so does the fake.
let queue = Promise.resolve();
const server = createServer((req, res) => {
  const chunks = [];
  req.on("data", (c) => chunks.push(c));
  req.on("end", () => {
    queue = queue.then(async () => {
      const raw = Buffer.concat(chunks).toString("utf8");
      let out;
      try {
        out = await respond(req.method ?? "GET", req.url ?? "/", raw);
      } catch (e) {
        out = { result: { status: 500, body: { fault_message: `fake firecracker internal error: ${e.message}` } } };
      }
      const { result } = out;
      let parsed = out.body;
      if (parsed === undefined && raw) {
        try {
          parsed = JSON.parse(raw);
        } catch {
          parsed = raw;
        }
      }
      record({ method: req.method, path: req.url, body: parsed ?? null, status: result.status, fault: result.body?.fault_message });
      if (result.status >= 400) vmm.log(`${req.method} ${req.url} -> ${result.status}: ${result.body?.fault_message}`);
      const payload = result.body === undefined ? "" : JSON.stringify(result.body);
      const headers = { ...(result.headers ?? {}), ...(payload ? { "content-type": "application/json", "content-length": Buffer.byteLength(payload) } : {}) };
      res.writeHead(result.status, headers);
      res.end(payload, () => result.after?.());
    });
  });
});

if (vsockGuest.size > 0) {
  await listenGuestInitiated(vsockGuest, () => vmm.vsock?.uds_path ?? `${args.apiSock}.no-vsock`, (line) => vmm.log(line)).catch((e) =>
    die(1, `fake firecracker: FAKE_FC_VSOCK_GUEST: ${e.message}`),
  );
}

server.on("error", (e) => die(1, `Failed to open the API socket at ${args.apiSock}: ${e.message}`));
server.listen(args.apiSock, () => consoleLine(`[fake firecracker] Running Firecracker v${VERSION} (fake), id=${args.id}, api-sock=${args.apiSock}`));

// Tests stand in for a command run inside the modelled guest (there is no SSH to a fake guest):
// SIGUSR1 = `poweroff` (the guest halts, the process stays), SIGUSR2 = `reboot` (the process exits).
// With FAKE_FC_BOOT=qemu the real guest does this itself, so the signals are ignored.
process.on("SIGUSR1", () => (boot ? consoleLine("[fake firecracker] SIGUSR1 ignored: a real guest runs") : vmm.guestHalts()));
process.on("SIGUSR2", () => (boot ? consoleLine("[fake firecracker] SIGUSR2 ignored: a real guest runs") : vmm.guestReboots()));

for (const sig of ["SIGTERM", "SIGINT", "SIGHUP"]) {
  process.on(sig, () => exit(128 + ({ SIGHUP: 1, SIGINT: 2, SIGTERM: 15 })[sig]));
}
process.on("uncaughtException", (e) => {
  process.stderr.write(`fake firecracker: ${e.stack ?? e.message}\n`);
  exit(1);
});
