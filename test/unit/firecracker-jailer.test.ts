import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { cgroup2Mount, cgroupLimits, findJail, jailedSpec, jailerArgv, jailLayout, jailOfSocket } from "../../src/adapters/firecracker/jail.js";
import { firecrackerSocket } from "../../src/adapters/firecracker/layout.js";
import { resolveJailer } from "../../src/adapters/firecracker/resolve.js";
import { which } from "../../src/adapters/exec/which.js";
import type { VmmSpec } from "../../src/ports/vmm.js";

const dir = mkdtempSync(join(tmpdir(), "fcjailer-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const exe = (p: string) => {
  mkdirSync(join(p, ".."), { recursive: true });
  writeFileSync(p, "#!/bin/sh\n");
  chmodSync(p, 0o755);
  return p;
};
const ID = "551e7604-e35c-42b3-b825-416853441234";

describe("jailerArgv", () => {
  it("is exactly jailer.md's invocation: id, exec file, uid/gid, chroot base, cgroup v2 limits, then firecracker's --api-sock in the jail", () => {
    const argv = jailerArgv({
      id: ID,
      execFile: "/usr/bin/firecracker",
      uid: 990,
      gid: 985,
      chrootBase: "/var/lib/banger/jail",
      vcpus: 2,
      memoryMib: 1024,
      parentCgroup: "banger",
    });
    expect(argv).toEqual([
      "--id",
      ID,
      "--exec-file",
      "/usr/bin/firecracker",
      "--uid",
      "990",
      "--gid",
      "985",
      "--chroot-base-dir",
      "/var/lib/banger/jail",
      "--cgroup-version",
      "2",
      "--parent-cgroup",
      "banger",
      "--cgroup",
      "cpu.max=200000 100000",
      "--cgroup",
      `memory.max=${(1024 + 128) * 1024 * 1024}`,
      "--",
      "--api-sock",
      "/fc.sock",
    ]);
    // The jailer passes --id to firecracker itself; no --daemonize (stdout is the serial console), no --new-pid-ns.
    expect(argv.slice(argv.indexOf("--") + 1)).not.toContain("--id");
    expect(argv).not.toContain("--daemonize");
    expect(argv).not.toContain("--new-pid-ns");
  });

  it("refuses an id outside jailer.md's rule (alphanumerics and hyphens, at most 64)", () => {
    const base = { execFile: "/f", uid: 1, gid: 1, chrootBase: "/j", vcpus: 1, memoryMib: 128, parentCgroup: "banger" };
    expect(() => jailerArgv({ ...base, id: "a_b" })).toThrow(/alphanumerics and hyphens/);
    expect(() => jailerArgv({ ...base, id: "x".repeat(65) })).toThrow(/1 to 64/);
    expect(() => jailerArgv({ ...base, id: "" })).toThrow();
    expect(jailerArgv({ ...base, id: "x".repeat(64) })[1]).toBe("x".repeat(64));
  });

  it("cgroup limits follow the VM's size", () => {
    expect(cgroupLimits(1, 128)).toEqual(["cpu.max=100000 100000", `memory.max=${256 * 1024 * 1024}`]);
    expect(cgroupLimits(4, 4096)[0]).toBe("cpu.max=400000 100000");
  });
});

describe("jail layout", () => {
  it("is <chroot base>/<exec file name>/<id>/root, the VM dir's name being the id", () => {
    expect(jailLayout("/s/jail", `/s/vms/${ID}`, "firecracker")).toEqual({
      id: ID,
      jailDir: `/s/jail/firecracker/${ID}`,
      root: `/s/jail/firecracker/${ID}/root`,
    });
    expect(jailOfSocket("/s/jail", `/s/jail/firecracker-v1.16/${ID}/root/fc.sock`)).toEqual({
      id: ID,
      jailDir: `/s/jail/firecracker-v1.16/${ID}`,
      root: `/s/jail/firecracker-v1.16/${ID}/root`,
    });
    expect(jailOfSocket("/s/jail", `/s/vms/${ID}/fc.sock`)).toBeUndefined();
  });

  it("the sockets are in the jail while it exists, else in the VM dir", () => {
    const base = join(dir, "jail");
    const vmDir = join(dir, "vms", ID);
    expect(firecrackerSocket(vmDir, "vsock", base)).toBe(join(vmDir, "vsock.sock"));
    expect(findJail(base, vmDir)).toBeUndefined();
    mkdirSync(join(base, "firecracker-x", ID, "root"), { recursive: true });
    expect(findJail(base, vmDir)?.root).toBe(join(base, "firecracker-x", ID, "root"));
    expect(firecrackerSocket(vmDir, "vsock", base)).toBe(join(base, "firecracker-x", ID, "root", "vsock.sock"));
    expect(firecrackerSocket(vmDir, "api", base)).toBe(join(base, "firecracker-x", ID, "root", "fc.sock"));
    expect(firecrackerSocket(vmDir, "api")).toBe(join(vmDir, "fc.sock"));
  });

  it("firecracker is given the in-jail names", () => {
    const spec = { kernel: "/img/vmlinux", initrd: "/img/initrd.img", rootfs: "/v/rootfs.ext4", workDisk: "/v/work.ext4" } as VmmSpec;
    expect(jailedSpec(spec)).toMatchObject({ kernel: "/vmlinux", initrd: "/initrd", rootfs: "/rootfs.ext4", workDisk: "/work.ext4" });
    expect(jailedSpec({ ...spec, initrd: undefined }).initrd).toBeUndefined();
  });
});

describe("cgroup2Mount", () => {
  it("is the cgroup2 line of /proc/mounts, else /sys/fs/cgroup", () => {
    const m = join(dir, "mounts");
    writeFileSync(m, "sysfs /sys sysfs rw 0 0\ncgroup /sys/fs/cgroup/cpu cgroup rw,cpu 0 0\ncgroup2 /sys/fs/cgroup/unified cgroup2 rw 0 0\n");
    expect(cgroup2Mount(m)).toBe("/sys/fs/cgroup/unified");
    writeFileSync(m, "sysfs /sys sysfs rw 0 0\n");
    expect(cgroup2Mount(m)).toBe("/sys/fs/cgroup");
    expect(cgroup2Mount(join(dir, "none"))).toBe("/sys/fs/cgroup");
  });
});

describe("resolveJailer", () => {
  const fc = exe(join(dir, "fcbin", "firecracker"));
  it("a configured path must exist; a configured name must be on PATH", () => {
    expect(() => resolveJailer(join(dir, "nope"), fc, "")).toThrow(/jailer_bin .*nope does not exist/);
    expect(() => resolveJailer("no-such-jailer-here", fc, "")).toThrow(/was not found on PATH/);
    const j = exe(join(dir, "elsewhere", "my-jailer"));
    expect(resolveJailer(j, fc, "")).toBe(j);
    expect(resolveJailer("my-jailer", fc, join(dir, "elsewhere"))).toBe(j);
  });

  it("unset: the jailer beside firecracker wins over one on PATH; none found is undefined", () => {
    const onPath = exe(join(dir, "pathbin", "jailer"));
    expect(resolveJailer(undefined, fc, join(dir, "pathbin"))).toBe(onPath);
    const beside = exe(join(dir, "fcbin", "jailer"));
    expect(resolveJailer(undefined, fc, join(dir, "pathbin"))).toBe(beside);
    rmSync(beside);
    if (!which("jailer", "")) expect(resolveJailer(undefined, fc, "")).toBeUndefined();
  });
});
