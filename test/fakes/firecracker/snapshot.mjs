// The fake's snapshot model: PATCH /vm (pause/resume), PUT /snapshot/create,
// PUT /snapshot/load, and PATCH /drives (the repointing a restored VM needs).
// The rules follow the v1.16.1 spec and docs/snapshotting/snapshot-support.md:
// create only while paused, load only on a fresh process, a load that fails
// after its input was accepted ends the process, the files recorded in the
// snapshot (drives) must exist at load. The files written are real: a state
// file holding the VM's configuration under a checksum, and a sparse memory
// file of the VM's size whose header pairs it with its state file.
import { randomBytes, createHash } from "node:crypto";
import { closeSync, existsSync, ftruncateSync, openSync, readFileSync, readSync, statSync, writeFileSync, writeSync } from "node:fs";
import { createConnection } from "node:net";
import { dirname } from "node:path";

const STATE_MAGIC = "FAKE-FIRECRACKER-SNAPSHOT v1";
const MEM_MAGIC = "FAKE-FIRECRACKER-MEMORY v1";
const MIB = 1024 * 1024;

const sha256 = (s) => createHash("sha256").update(s).digest("hex");

/** Render a snapshot state file: magic line, JSON payload line, checksum line (Firecracker uses a CRC64). */
function renderState(payload) {
  const json = JSON.stringify(payload);
  return `${STATE_MAGIC}\n${json}\ncrc ${sha256(json)}\n`;
}

/** Parse a state file; a string names what is wrong with it. */
export function parseState(text) {
  const [magic, json, crcLine] = text.split("\n");
  if (magic !== STATE_MAGIC) return "not a snapshot state file (bad magic)";
  if (crcLine !== `crc ${sha256(json ?? "")}`) return "the state file's checksum does not match its content (corrupted)";
  try {
    return JSON.parse(json);
  } catch {
    return "the state file's payload is not JSON";
  }
}

function memHeader(nonce, id, memMib) {
  return `${MEM_MAGIC} nonce=${nonce} id=${id} mem_size_mib=${memMib}\n`;
}

/** Pause and resume. Post-boot only; pausing a paused VM (or resuming a running one) keeps it so. */
export async function patchVm(vmm, fault, body) {
  if (!vmm.started) return fault("post-boot-only", "The requested operation is not supported before starting the microVM: PATCH /vm.");
  const pause = body.state === "Paused";
  if (pause === vmm.paused) return { status: 204 };
  if (vmm.o.boot) {
    try {
      await (pause ? vmm.o.boot.pause() : vmm.o.boot.resume());
    } catch (e) {
      return fault("vm-state", `Failed to ${pause ? "pause" : "resume"} the microVM: ${e.message}`);
    }
  }
  vmm.paused = pause;
  vmm.log(pause ? "microVM paused" : "microVM resumed");
  return { status: 204 };
}

export function createSnapshot(vmm, fault, body) {
  if (vmm.o.boot) {
    return fault("fake-qemu-no-snapshot", "The fake firecracker cannot snapshot a guest it boots with QEMU (FAKE_FC_BOOT=qemu); use the QEMU driver's snapshots.");
  }
  if (!vmm.started) return fault("post-boot-only", "The requested operation is not supported before starting the microVM: PUT /snapshot/create.");
  if (!vmm.paused) return fault("create-needs-paused", "Cannot create a snapshot: the microVM is not paused. Send PATCH /vm {\"state\": \"Paused\"} first.");
  for (const p of [body.snapshot_path, body.mem_file_path]) {
    if (!existsSync(dirname(p))) return fault("snapshot-dir-exists", `Cannot create snapshot file ${p}: its directory does not exist.`);
  }
  if (body.snapshot_path === body.mem_file_path) return fault("snapshot-paths-differ", "snapshot_path and mem_file_path must be different files.");
  const nonce = randomBytes(8).toString("hex");
  const memMib = vmm.machine.mem_size_mib;
  const payload = {
    vmm_version: vmm.o.version,
    instance_id: vmm.o.id,
    snapshot_type: body.snapshot_type ?? "Full",
    created_at: new Date().toISOString(),
    mem: { nonce, size_bytes: memMib * MIB },
    "machine-config": vmm.machine,
    drives: [...vmm.drives.values()],
    "network-interfaces": [...vmm.ifaces.values()],
    ...(vmm.vsock ? { vsock: vmm.vsock } : {}),
  };
  try {
    // Existing files are truncated and overwritten, as Firecracker does.
    const fd = openSync(body.mem_file_path, "w");
    try {
      writeSync(fd, memHeader(nonce, vmm.o.id, memMib));
      ftruncateSync(fd, memMib * MIB);
    } finally {
      closeSync(fd);
    }
    writeFileSync(body.snapshot_path, renderState(payload));
  } catch (e) {
    return fault("snapshot-write", `Cannot create snapshot: ${e.code ?? e.message}`);
  }
  vmm.log(`snapshot created: ${body.snapshot_path} + ${body.mem_file_path}`);
  return { status: 204 };
}

/** The checks Firecracker makes while parsing the request: they fail with a 400 and the process lives on. */
function loadRequestProblem(vmm, fault, body) {
  if (body.mem_backend !== undefined && body.mem_file_path !== undefined) {
    return fault("mem-fields-exclusive", "Too many fields: mem_backend and the deprecated mem_file_path are mutually exclusive.");
  }
  if (body.mem_backend === undefined && body.mem_file_path === undefined) {
    return fault("mem-field-required", "Missing field: one of mem_backend or mem_file_path is required.");
  }
  if (vmm.configuredForBoot()) {
    return fault(
      "load-needs-fresh-process",
      "Loading a microVM snapshot not allowed after configuring boot-specific resources (only the logger and metrics may be set first).",
    );
  }
  return null;
}

function connectUds(path) {
  return new Promise((resolve, reject) => {
    const c = createConnection(path);
    c.once("connect", () => resolve(c));
    c.once("error", reject);
  });
}

/**
 * PUT /snapshot/load. Parse-time problems answer 400 and leave the process as it was. Once the
 * load itself starts, a failure answers 400 and ends the process (docs: "a specific error is
 * reported and then the current Firecracker process is ended").
 */
export async function loadSnapshot(vmm, fault, body) {
  if (vmm.o.boot) {
    return fault("fake-qemu-no-snapshot", "The fake firecracker cannot restore a snapshot with FAKE_FC_BOOT=qemu; use the QEMU driver's snapshots.");
  }
  const early = loadRequestProblem(vmm, fault, body);
  if (early) return early;
  const deprecated = body.mem_file_path !== undefined || body.enable_diff_snapshots !== undefined;
  const fatal = (rule, message) => {
    const r = fault(rule, `Load snapshot error: ${message}`);
    vmm.o.console(`[fake firecracker] snapshot load failed (${rule}); exiting, as Firecracker does`);
    return { ...r, after: () => vmm.o.exit(1) };
  };

  let text;
  try {
    text = readFileSync(body.snapshot_path, "utf8");
  } catch (e) {
    return fatal("snapshot-file", `cannot open the snapshot file ${body.snapshot_path}: ${e.code ?? e.message}`);
  }
  const snap = parseState(text);
  if (typeof snap === "string") return fatal("snapshot-file", `${body.snapshot_path}: ${snap}`);
  if (snap.vmm_version !== vmm.o.version) {
    return fatal("snapshot-version", `the snapshot was written by Firecracker v${snap.vmm_version}; this is v${vmm.o.version}, which cannot load it`);
  }

  const backend = body.mem_backend ?? { backend_type: "File", backend_path: body.mem_file_path };
  let uffd = null;
  if (backend.backend_type === "File") {
    let st;
    try {
      st = statSync(backend.backend_path);
    } catch (e) {
      return fatal("mem-file", `cannot open the memory file ${backend.backend_path}: ${e.code ?? e.message}`);
    }
    if (st.size !== snap.mem.size_bytes) {
      return fatal("mem-file", `the memory file ${backend.backend_path} is ${st.size} bytes; the snapshot's guest has ${snap.mem.size_bytes}`);
    }
    const head = Buffer.alloc(200);
    const fd = openSync(backend.backend_path, "r");
    try {
      readSync(fd, head, 0, head.length, 0);
    } finally {
      closeSync(fd);
    }
    const line = head.toString("utf8").split("\n")[0];
    if (!line.startsWith(MEM_MAGIC) || !line.includes(`nonce=${snap.mem.nonce} `)) {
      return fatal("mem-file", `the memory file ${backend.backend_path} does not belong to the snapshot ${body.snapshot_path}`);
    }
  } else {
    try {
      uffd = await connectUds(backend.backend_path);
    } catch (e) {
      return fatal("uffd-socket", `cannot connect to the page-fault handler socket ${backend.backend_path}: ${e.code ?? e.message}`);
    }
  }

  const ifaces = new Map(snap["network-interfaces"].map((n) => [n.iface_id, { ...n }]));
  for (const o of body.network_overrides ?? []) {
    const n = ifaces.get(o.iface_id);
    if (!n) return fatal("network-override-iface", `network_overrides names iface_id ${JSON.stringify(o.iface_id)}, which the snapshot does not have (it has ${[...ifaces.keys()].join(", ") || "none"})`);
    n.host_dev_name = o.host_dev_name;
  }
  for (const n of ifaces.values()) {
    if (vmm.o.checkTap && !existsSync(`/sys/class/net/${n.host_dev_name}/tun_flags`)) {
      return fatal("tap-exists", `Open tap device failed: no TAP device named ${n.host_dev_name} on this host (interface ${n.iface_id}).`);
    }
  }
  for (const d of snap.drives) {
    const problem = d.path_on_host === undefined ? null : vmm.hostFileProblem(d.path_on_host, { write: !d.is_read_only });
    if (problem) return fatal("snapshot-drive-exists", `the snapshot's drive ${d.drive_id} must exist at load at its recorded path: ${problem}`);
  }
  let vsock = snap.vsock ?? null;
  if (body.vsock_override) {
    if (!vsock) return fatal("vsock-override-device", "vsock_override was given but the snapshot has no vsock device");
    vsock = { ...vsock, uds_path: body.vsock_override.uds_path };
  }
  if (vsock) {
    const bound = await vmm.putVsock(vsock);
    if (bound.status !== 204) return fatal("vsock-uds-absent", bound.body.fault_message.replace(/ \[rule: [^\]]+\]$/, ""));
  }

  vmm.machine = { ...snap["machine-config"], track_dirty_pages: Boolean(body.track_dirty_pages ?? body.enable_diff_snapshots) };
  vmm.drives = new Map(snap.drives.map((d) => [d.drive_id, d]));
  vmm.ifaces = ifaces;
  vmm.bootSource = null;
  vmm.started = true;
  vmm.guest = "running";
  vmm.paused = !body.resume_vm;
  vmm.restoredFrom = { snapshot_path: body.snapshot_path, mem_backend: backend, from_instance: snap.instance_id };
  if (uffd) {
    // Firecracker hands the handler the guest memory layout (and the uffd, which a fake cannot).
    uffd.end(JSON.stringify([{ base_host_virt_addr: 0, size: snap.mem.size_bytes, offset: 0, page_size: 4096 }]));
  }
  vmm.o.console(`[fake firecracker] restored from ${body.snapshot_path} (taken from instance ${snap.instance_id}); ${vmm.paused ? "paused" : "running"}`);
  vmm.log(`snapshot loaded from ${body.snapshot_path}`);
  return { status: 204, headers: deprecated ? { deprecation: "true" } : undefined };
}

/** PATCH /drives/{id}: post-boot only; the drive must exist and the new file must open. */
export function patchDrive(vmm, fault, pathId, body) {
  if (!vmm.started) return fault("post-boot-only", "The requested operation is not supported before starting the microVM: PATCH /drives.");
  if (pathId !== body.drive_id) return fault("path-id-matches-body", "The id from the path does not match the id from the body!");
  const drive = vmm.drives.get(body.drive_id);
  if (!drive) return fault("drive-exists", `Drive ${body.drive_id} not found: it can only be updated, not added, after boot.`);
  if (body.path_on_host !== undefined) {
    const problem = vmm.hostFileProblem(body.path_on_host, { write: !drive.is_read_only });
    if (problem) return fault("host-file-exists", `Cannot open block device. Invalid permission/path: ${problem}`);
  }
  vmm.drives.set(body.drive_id, { ...drive, ...body });
  vmm.log(`drive ${body.drive_id} updated`);
  return { status: 204 };
}
