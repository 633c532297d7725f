// FAKE_FC_BOOT=qemu: boot the configured guest for real with QEMU microvm,
// reusing the project's compiled argv builder and QMP client so the fake and
// the QEMU driver boot guests the same way. Power behaves like Firecracker's:
// a guest power-off halts the guest and the process stays; a guest reset
// (reboot=k through the i8042, Ctrl-Alt-Del with C_A_D on, a panic with
// panic=1) ends the process; SendCtrlAltDel is a real key press on an i8042.
import { spawn, spawnSync } from "node:child_process";
import { existsSync, unlinkSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { pathToFileURL } from "node:url";

const QMP_WAIT_MS = 15_000;

async function importBuilt(repoRoot, rel) {
  const file = join(repoRoot, "build/runtime", rel);
  if (!existsSync(file)) throw new Error(`${file} is missing; run \`npx tsc -p tsconfig.json\` in ${repoRoot} first`);
  return import(pathToFileURL(file).href);
}

function hasSetpriv() {
  return spawnSync("setpriv", ["--help"], { stdio: "ignore", timeout: 5_000 }).status === 0;
}

/**
 * @param {object} o
 * @param {string} o.repoRoot
 * @param {string} o.apiSock
 * @param {string} o.id
 * @param {(line: string) => void} o.console
 * @param {(code: number) => void} o.exit called once qemu is gone
 */
export function createQemuBoot(o) {
  // Beside the API socket, so a SIGKILLed fake leaves nothing outside the VM dir; sun_path caps the length.
  const besideApi = join(dirname(o.apiSock), "fake-qemu-qmp.sock");
  const qmpSocket = Buffer.byteLength(besideApi) <= 107 ? besideApi : join(tmpdir(), `fakefc-${process.pid}.qmp`);
  const besideAgent = join(dirname(o.apiSock), "fake-qemu-agent.sock");
  const agentSocket = Buffer.byteLength(besideAgent) <= 107 ? besideAgent : join(tmpdir(), `fakefc-${process.pid}.agent`);
  const qemuBin = process.env.FAKE_FC_QEMU_BIN || "qemu-system-x86_64";
  const accel = process.env.FAKE_FC_QEMU_ACCEL === "kvm" ? "kvm" : "tcg";
  let child = null;
  let qmpMod = null;
  // One long-lived QMP connection: it sees SHUTDOWN events and sends the keys.
  let qmp = null;
  let halted = false;

  function removeQmp() {
    for (const p of [qmpSocket, agentSocket]) {
      try {
        unlinkSync(p);
      } catch {
        // never created or already gone
      }
    }
  }

  async function start(cfg) {
    const { buildQemuArgs } = await importBuilt(o.repoRoot, "adapters/qemu/args.js");
    const { hostTscKhz } = await importBuilt(o.repoRoot, "adapters/exec/proc.js");
    qmpMod = await importBuilt(o.repoRoot, "adapters/qemu/qmp.js");
    const root = cfg.drives.find((d) => d.is_root_device);
    const data = cfg.drives.filter((d) => !d.is_root_device);
    if (!root || data.length !== 1) {
      throw new Error(`the qemu boot backend needs one root drive and one data drive, got ${cfg.drives.length} drive(s)`);
    }
    const net = cfg["network-interfaces"][0];
    const spec = {
      vmId: o.id,
      name: o.id,
      dir: dirname(o.apiSock),
      kernel: cfg["boot-source"].kernel_image_path,
      initrd: cfg["boot-source"].initrd_path,
      bootArgs: cfg["boot-source"].boot_args ?? "",
      rootfs: root.path_on_host,
      workDisk: data[0].path_on_host,
      vcpus: cfg["machine-config"].vcpu_count,
      memoryMib: cfg["machine-config"].mem_size_mib,
      tap: net?.host_dev_name ?? "",
      mac: net?.guest_mac ?? "02:fc:00:00:00:02",
      vsockCid: cfg.vsock?.guest_cid ?? 3,
    };
    removeQmp();
    const args = buildQemuArgs(spec, {
      accel,
      tscKhz: hostTscKhz(),
      qmpSocket,
      // stdio: the guest console lands in our stdout, which is console.log for the driver.
      serial: { kind: "stdio" },
      paused: false,
      // The guest's channel; the fake's hybrid vsock (uds_path) reaches it for vsock port 22.
      agentSocket: cfg.vsock ? agentSocket : undefined,
    });
    // Firecracker emulates an i8042 (SendCtrlAltDel types on it, reboot=k resets through it);
    // microvm has none unless asked. -no-shutdown: a guest power-off pauses qemu instead of
    // ending it, as a halted guest leaves Firecracker running. -no-reboot (from buildQemuArgs)
    // turns a reset into a shutdown too; the SHUTDOWN event's reason tells the two apart.
    args.push("-device", "i8042", "-no-shutdown");
    // pdeathsig: if the fake is SIGKILLed, the kernel kills qemu too, so no guest leaks.
    const [cmd, argv] = hasSetpriv() ? ["setpriv", ["--pdeathsig", "SIGKILL", "--", qemuBin, ...args]] : [qemuBin, args];
    o.console(`[fake firecracker] booting with ${qemuBin} (${accel})`);
    let exited = null;
    let spawnError = null;
    child = spawn(cmd, argv, { stdio: ["ignore", "inherit", "inherit"] });
    child.on("error", (e) => (spawnError = e));
    child.on("exit", (code, signal) => {
      exited = signal ? `killed by ${signal}` : `exited with code ${code}`;
      removeQmp();
      o.exit(code === 0 ? 0 : 1);
    });

    const deadline = Date.now() + QMP_WAIT_MS;
    for (;;) {
      await sleep(50);
      if (spawnError) throw new Error(`cannot run ${cmd}: ${spawnError.message}`);
      if (exited) throw new Error(`qemu ${exited} before its QMP socket answered`);
      try {
        qmp = await qmpMod.QmpClient.connect(qmpSocket, 1_000);
        await qmp.execute("query-status");
        watchShutdown(qmp);
        return;
      } catch (e) {
        qmp?.close();
        qmp = null;
        if (Date.now() > deadline) {
          kill();
          throw new Error(`qemu QMP did not answer within ${QMP_WAIT_MS} ms: ${e.message}`);
        }
      }
    }
  }

  async function watchShutdown(q) {
    // QmpClient records every event it receives; watch for SHUTDOWN while qemu runs.
    let ev;
    while (!(ev = q.events.find((e) => e.event === "SHUTDOWN"))) {
      if (!child || child.exitCode !== null || child.signalCode !== null) return;
      await sleep(50);
    }
    {
      const reason = ev.data?.reason;
      if (reason === "guest-shutdown") {
        halted = true;
        o.console("[fake firecracker] the guest powered off; the process keeps running, as Firecracker's does");
        return;
      }
      // Firecracker exits (code 0) when the guest resets; end qemu, and its exit ends the fake.
      o.console(`[fake firecracker] guest ${reason === "guest-reset" ? "reset" : `stopped (${reason})`}: exiting, as Firecracker does`);
      q.execute("quit", undefined, 3_000).catch(() => kill());
    }
  }

  async function ctrlAltDel() {
    if (!child || !qmp) throw new Error("no qemu is running");
    // A halted guest has no running keyboard driver; Firecracker answers 204 and nothing happens.
    if (halted) return o.console("[fake firecracker] Ctrl-Alt-Del ignored: the guest is halted");
    const keys = ["ctrl", "alt", "delete"].map((data) => ({ type: "qcode", data }));
    await qmp.execute("send-key", { keys }, 3_000);
  }

  // PATCH /vm maps onto QMP stop/cont; snapshots themselves are refused in this mode (snapshot.mjs).
  async function pause() {
    if (!qmp) throw new Error("no qemu is running");
    await qmp.execute("stop", undefined, 3_000);
  }

  async function resume() {
    if (!qmp) throw new Error("no qemu is running");
    await qmp.execute("cont", undefined, 3_000);
  }

  function kill() {
    qmp?.close();
    if (child && child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
    removeQmp();
  }

  return { start, ctrlAltDel, pause, resume, kill, agentSocket };
}
