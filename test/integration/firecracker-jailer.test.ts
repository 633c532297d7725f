import { randomUUID } from "node:crypto";
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readlinkSync, rmSync, statSync, writeFileSync } from "node:fs";
import { createServer, type Server } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import pino from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { SocketGuestChannel } from "../../src/adapters/channel/guest-channel.js";
import { lookupVmmUser, type VmmUser } from "../../src/adapters/exec/privilege.js";
import { FirecrackerVmm } from "../../src/adapters/firecracker/driver.js";
import { jailerArgv } from "../../src/adapters/firecracker/jail.js";
import { firecrackerSocket } from "../../src/adapters/firecracker/layout.js";
import { hostCheckConfig, hostFacts } from "../../src/adapters/host/facts.js";
import { protectionChecks } from "../../src/app/protections.js";
import { loadConfig } from "../../src/config/load.js";
import type { VmmHandle, VmmSpec } from "../../src/ports/vmm.js";
import { FAKE_FC_ENV, fakeFcBin, fakeJailerBin, readCalls, readJailerRecords } from "../fakes/firecracker/testkit.js";
import { createSystemUser, procStatus, systemUserSkipReason, type TestUser } from "../helpers/system-user.js";

const skip = systemUserSkipReason();
const log = pino({ level: "silent" });

describe.skipIf(skip)(`Firecracker under the (fake) jailer${skip ? ` (skipped: ${skip})` : ""}`, () => {
  let account: TestUser;
  let user: VmmUser;
  let dir: string;
  let chrootBase: string;
  let cgroupRoot: string;
  let jailer: string;
  let echo: Server;
  let echoPort: number;
  const running: [FirecrackerVmm, VmmHandle][] = [];

  beforeAll(async () => {
    account = createSystemUser("bgr-jail", ["kvm"]);
    user = lookupVmmUser(account.name)!;
    dir = mkdtempSync(join(tmpdir(), "banger-jail-"));
    // Like /var/lib/banger: traversable. The fake cannot pivot_root, so its firecracker walks the real path to the jail.
    chmodSync(dir, 0o711);
    mkdirSync(join(dir, "vms"), { mode: 0o711 });
    chrootBase = join(dir, "jail");
    cgroupRoot = join(dir, "cgroup");
    mkdirSync(cgroupRoot);
    jailer = fakeJailerBin(dir, cgroupRoot);
    // The modelled guest program behind vsock port 52: an echo server on loopback.
    echo = createServer((s) => s.pipe(s));
    await new Promise<void>((r) => echo.listen(0, "127.0.0.1", r));
    echoPort = (echo.address() as { port: number }).port;
  });

  afterAll(async () => {
    for (const [vmm, h] of running) await vmm.kill(h).catch(() => undefined);
    echo?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
    account?.remove();
  });

  function spec(): VmmSpec {
    const id = randomUUID();
    const vmDir = join(dir, "vms", id);
    mkdirSync(vmDir);
    const file = (f: string, bytes: number) => {
      writeFileSync(join(vmDir, f), Buffer.alloc(bytes));
      return join(vmDir, f);
    };
    const kernel = join(dir, "vmlinux");
    // Root-owned and 0644 like an image's kernel.
    if (!existsSync(kernel)) writeFileSync(kernel, Buffer.alloc(4096), { mode: 0o644 });
    return {
      vmId: id,
      name: `jailed-${id.slice(0, 4)}`,
      dir: vmDir,
      kernel,
      bootArgs: "console=ttyS0",
      rootfs: file("rootfs.ext4", 4 << 20),
      workDisk: file("work.ext4", 4 << 20),
      vcpus: 2,
      memoryMib: 256,
      tap: "tap-jail0",
      mac: "02:fc:00:00:00:07",
      vsockCid: 3,
    };
  }

  const driver = (fc: string) => new FirecrackerVmm({ bin: fc, log, jailer: { bin: jailer, user, cgroupRoot }, chrootBase, spawnTimeoutMs: 30_000 });

  it("boots a VM in its jail: jailer.md's argv and layout, a non-root VMM, the cgroup limits; stop removes jail and cgroup", async () => {
    const fc = fakeFcBin(dir, { ...FAKE_FC_ENV, FAKE_FC_VSOCK_LISTEN: `52=tcp:127.0.0.1:${echoPort}` });
    const vmm = driver(fc);
    const s = spec();
    const h = await vmm.spawn(s);
    running.push([vmm, h]);
    const jailDir = join(chrootBase, "firecracker-fake", s.vmId);
    const root = join(jailDir, "root");
    expect(h.controlSocket).toBe(join(root, "fc.sock"));
    // A restarted daemon rebuilds the handle from the VM dir and must find the same socket.
    expect(vmm.controlSocket(s.dir)).toBe(h.controlSocket);

    // The process the driver tracks is firecracker itself (the jailer execs in place), as the VMM user.
    const st = procStatus(h.pid);
    expect(user.uid).toBeGreaterThan(0);
    expect(st.uid).toEqual([user.uid, user.uid, user.uid, user.uid]);
    expect(st.gid).toEqual([user.gid, user.gid, user.gid, user.gid]);
    expect(st.capEff).toBe("0000000000000000");
    const cmdline = readFileSync(`/proc/${h.pid}/cmdline`, "utf8").split("\0");
    expect(cmdline).toContain(`--id=${s.vmId}`);
    expect(cmdline.slice(cmdline.indexOf("--api-sock"), cmdline.indexOf("--api-sock") + 2)).toEqual(["--api-sock", "/fc.sock"]);
    expect(readlinkSync(`/proc/${h.pid}/cwd`)).toBe(root);

    // The jailer's argv is exactly the builder's, which test/unit/firecracker-jailer.test.ts holds to jailer.md.
    const [rec] = readJailerRecords(cgroupRoot).filter((r) => r.id === s.vmId);
    expect(rec.argv).toEqual(
      jailerArgv({ id: s.vmId, execFile: fc, uid: user.uid, gid: user.gid, chrootBase, vcpus: 2, memoryMib: 256, parentCgroup: "banger" }),
    );
    expect(rec.chrootDir).toBe(root);
    expect(rec.cgroupVersion).toBe("2");
    expect(rec.settings).toEqual({ "cpu.max": "200000 100000", "memory.max": String((256 + 128) * 1024 * 1024) });
    expect(rec.cgroupDir).toBe(join(cgroupRoot, "banger", s.vmId));
    expect(existsSync(rec.cgroupDir!)).toBe(true);

    // The layout: <base>/<exec name>/<id>/root, owned by the jailed uid, the exec file copied in, device nodes (or the fake's placeholders).
    expect(statSync(root).uid).toBe(user.uid);
    expect(statSync(join(root, "firecracker-fake")).size).toBe(statSync(fc).size);
    for (const d of ["dev/kvm", "dev/net/tun"]) {
      expect(statSync(join(root, d)).uid).toBe(user.uid);
      if (rec.devNodes === "mknod") expect(statSync(join(root, d)).isCharacterDevice()).toBe(true);
    }
    // Disks and the VMM log are hard links to the VM dir's files; the kernel a link or a copy.
    for (const [inJail, host] of [
      ["rootfs.ext4", s.rootfs],
      ["work.ext4", s.workDisk],
      ["firecracker.log", join(s.dir, "firecracker.log")],
    ]) {
      expect(statSync(join(root, inJail)).ino, inJail).toBe(statSync(host).ino);
    }
    expect(statSync(join(root, "vmlinux")).size).toBe(4096);

    await vmm.configure(h, s);
    await vmm.start(h);
    const calls = readCalls(join(root, "fc.sock.calls.jsonl"));
    const body = (path: string) => calls.find((c) => c.path === path && c.status === 204)?.body as Record<string, unknown>;
    expect(body("/boot-source")).toMatchObject({ kernel_image_path: "/vmlinux" });
    expect(body("/drives/rootfs")).toMatchObject({ path_on_host: "/rootfs.ext4" });
    expect(body("/drives/work")).toMatchObject({ path_on_host: "/work.ext4" });
    expect(body("/vsock")).toMatchObject({ uds_path: "/vsock.sock" });
    expect(body("/logger")).toMatchObject({ log_path: "/firecracker.log" });

    // The guest channel finds the vsock socket in the jail and reaches the guest program through it.
    expect(firecrackerSocket(s.dir, "vsock", chrootBase)).toBe(join(root, "vsock.sock"));
    const channel = new SocketGuestChannel({ log, firecrackerChrootBase: chrootBase });
    const { stream, via } = await channel.open({ name: s.name, vmm: "firecracker", dir: s.dir, vsockCid: 3 }, 52, { timeoutMs: 10_000 });
    expect(via).toBe("hybrid-vsock");
    const reply = new Promise<string>((r) => stream.once("data", (b: Buffer) => r(b.toString())));
    stream.resume();
    stream.write("ping");
    expect(await reply).toBe("ping");
    stream.destroy();

    const res = await vmm.stop(h, { timeoutMs: 15_000 });
    expect(["vmm-request", "sigterm", "sigkill"]).toContain(res.how);
    expect(vmm.isAlive(h)).toBe(false);
    expect(existsSync(jailDir)).toBe(false);
    expect(existsSync(rec.cgroupDir!)).toBe(false);
    // The VM dir keeps its disks and console; the sockets now resolve to the VM dir again.
    expect(existsSync(s.rootfs)).toBe(true);
    expect(readFileSync(h.consoleLog, "utf8")).toMatch(/fake firecracker.*api-sock=/);
    expect(vmm.controlSocket(s.dir)).toBe(join(s.dir, "fc.sock"));
  });

  it("kill (the undo of a later create step) removes the jail and the cgroup too", async () => {
    const vmm = driver(fakeFcBin(dir, FAKE_FC_ENV));
    const s = spec();
    const h = await vmm.spawn(s);
    running.push([vmm, h]);
    const jailDir = join(chrootBase, "firecracker-fake", s.vmId);
    expect(existsSync(jailDir)).toBe(true);
    await vmm.kill(h);
    expect(existsSync(jailDir)).toBe(false);
    expect(existsSync(join(cgroupRoot, "banger", s.vmId))).toBe(false);
  });

  it("a failed spawn leaves no jail dir and no cgroup: firecracker dies in the jail, or the jailer refuses", async () => {
    // A firecracker that exits at once, after the jailer built the jail and the cgroup.
    const broken = join(dir, "firecracker-broken");
    writeFileSync(broken, "#!/bin/sh\necho 'no /dev/kvm here' >&2\nexit 1\n", { mode: 0o755 });
    const s1 = spec();
    await expect(driver(broken).spawn(s1)).rejects.toMatchObject({ code: "VMM_FAILED" });
    expect(readJailerRecords(cgroupRoot).some((r) => r.id === s1.vmId)).toBe(true);
    expect(existsSync(join(chrootBase, "firecracker-broken", s1.vmId))).toBe(false);
    expect(existsSync(join(cgroupRoot, "banger", s1.vmId))).toBe(false);

    // jailer.md: the exec file's name must contain "firecracker"; the fake jailer refuses before building anything.
    const misnamed = fakeFcBin(dir, FAKE_FC_ENV, "vmm-fake");
    const s2 = spec();
    const err = await driver(misnamed)
      .spawn(s2)
      .catch((e: unknown) => e);
    expect(err).toMatchObject({ code: "VMM_FAILED" });
    expect(readJailerRecords(cgroupRoot).some((r) => r.id === s2.vmId)).toBe(false);
    expect(existsSync(join(chrootBase, "vmm-fake", s2.vmId))).toBe(false);
    expect(readFileSync(join(s2.dir, "console.log"), "utf8")).toMatch(/must contain "firecracker"/);
  });

  it("doctor: jailer PASS with jailer_bin set (real host facts), WARN naming the problem when it points nowhere", async () => {
    const check = async (jailerBin: string) => {
      const file = join(dir, `config-${randomUUID()}.toml`);
      writeFileSync(
        file,
        `vmm = "firecracker"\nfirecracker_bin = "${fakeFcBin(dir, FAKE_FC_ENV)}"\njailer_bin = "${jailerBin}"\nvmm_user = "${account.name}"\nstate_dir = "${join(dir, "state")}"\n`,
      );
      const cfg = loadConfig({ env: { env: { ...process.env, BANGER_CONFIG: file }, uid: 0, home: "/root" } });
      return (await protectionChecks(hostCheckConfig(cfg), hostFacts(cfg))).find((c) => c.name === "jailer");
    };
    expect(await check(jailer)).toMatchObject({ status: "PASS", detail: expect.stringContaining(`${jailer}: each VM in its own chroot as ${account.name}`) });
    expect(await check(join(dir, "no-jailer"))).toMatchObject({ status: "WARN", detail: expect.stringMatching(/no-jailer does not exist/) });
  });
});
