import { existsSync, mkdtempSync, readdirSync, writeFileSync, appendFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { fakeBzImage, fakeElfKernel, fakeInitrd, realExt4 } from "../helpers/artifacts.js";
import { BANGER, BANGERD, built, runIn, startTestDaemon, type TestDaemon } from "../helpers/daemon.js";
import { netnsSkipReason } from "../helpers/netns.js";

const skip = netnsSkipReason() ?? built();

describe.skipIf(skip)(`control plane through the real CLI and daemon${skip ? ` (skipped: ${skip})` : ""}`, () => {
  let d: TestDaemon;
  let art: string;
  let kernel: string, rootfs: string, seed: string, initrd: string;

  beforeAll(async () => {
    d = await startTestDaemon();
    art = mkdtempSync(join(tmpdir(), "banger-art-"));
    kernel = fakeElfKernel(art);
    rootfs = realExt4(art, "rootfs.ext4");
    seed = realExt4(art, "seed.ext4", { ".bashrc": "# seed\n" });
    initrd = fakeInitrd(art);
  });
  afterAll(async () => {
    await d?.destroy();
    if (art) rmSync(art, { recursive: true, force: true });
  });

  const register = (name: string, extra: string[] = []) => d.cli(["image", "register", "--name", name, "--kernel", kernel, "--rootfs", rootfs, ...extra]);

  it("reports status and version", async () => {
    const st = await d.cli(["--json", "daemon", "status"]);
    expect(st.code).toBe(0);
    expect(st.json<{ running: boolean; vmm: string }>()).toMatchObject({ running: true, vmm: "qemu" });
    const v = await d.cli(["version"]);
    expect(v.stdout).toMatch(/banger \d+\.\d+\.\d+\nbangerd \d+\.\d+\.\d+/);
  });

  it("registers an image with all artifacts, copying and checksumming them", async () => {
    const r = await d.cli([
      "--json",
      "image",
      "register",
      "--name",
      "demo-1.0-1",
      "--kernel",
      kernel,
      "--initrd",
      initrd,
      "--rootfs",
      rootfs,
      "--work-seed",
      seed,
      "--os",
      "debian",
      "--service",
      "opencode:4096:300",
    ]);
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    const img = r.json<{ image: { id: string; name: string; artifacts: { role: string; path: string; sha256: string }[]; guest: { services: unknown[] } } }>()
      .image;
    expect(img.artifacts.map((a) => a.role).sort()).toEqual(["initrd", "kernel", "rootfs", "work_seed"]);
    for (const a of img.artifacts) {
      expect(a.path.startsWith(join(d.stateDir, "images", img.id))).toBe(true);
      expect(existsSync(a.path)).toBe(true);
      expect(a.sha256).toMatch(/^[0-9a-f]{64}$/);
    }
    expect(img.guest.services).toEqual([
      { name: "ssh", port: 22 },
      { name: "opencode", port: 4096, timeoutMs: 300_000 },
    ]);
    const ls = await d.cli(["image", "ls"]);
    expect(ls.stdout).toMatch(/^NAME\s+ALIASES\s+STATUS/m);
    expect(ls.stdout).toMatch(/demo-1\.0-1\s+-\s+ok\s+debian\s+yes/);
  });

  it("refuses a duplicate name", async () => {
    const r = await register("demo-1.0-1");
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/already exists/);
  });

  it.each([
    [["--name", "Bad Name"], /image name "Bad Name"/],
    [["--name", "a/b"], /image name/],
  ])("rejects bad image names %j", async (args, msg) => {
    const r = await d.cli(["image", "register", ...args, "--kernel", kernel, "--rootfs", rootfs]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(msg);
    expect(r.stderr).toMatch(/hint: use lowercase/);
  });

  it("rejects a bzImage kernel, a non-ext4 rootfs and missing files, leaving nothing behind", async () => {
    const before = readdirSync(join(d.stateDir, "images")).sort();
    const bz = await d.cli(["image", "register", "--name", "bz", "--kernel", fakeBzImage(art), "--rootfs", rootfs]);
    expect(bz.code).toBe(1);
    expect(bz.stderr).toMatch(/bzImage/);
    expect(bz.stderr).toMatch(/hint: .*vmlinux/);
    const notExt4 = join(art, "not-ext4.img");
    writeFileSync(notExt4, Buffer.alloc(64 * 1024));
    const r2 = await d.cli(["image", "register", "--name", "noext4", "--kernel", kernel, "--rootfs", notExt4]);
    expect(r2.code).toBe(1);
    expect(r2.stderr).toMatch(/--rootfs .*not an ext4/);
    const r3 = await d.cli(["image", "register", "--name", "nofile", "--kernel", kernel, "--rootfs", join(art, "nope.ext4")]);
    expect(r3.code).toBe(1);
    expect(r3.stderr).toMatch(/does not exist/);
    const r4 = await d.cli(["image", "register", "--name", "badseed", "--kernel", kernel, "--rootfs", rootfs, "--work-seed", notExt4]);
    expect(r4.stderr).toMatch(/--work-seed .*not an ext4/);
    expect(readdirSync(join(d.stateDir, "images")).sort()).toEqual(before);
    const ls = await d.cli(["--json", "image", "ls"]);
    expect(ls.json<{ images: { name: string }[] }>().images.map((i) => i.name)).toEqual(["demo-1.0-1"]);
  });

  it("promotes aliases, resolves them, rolls back, and guards rm", async () => {
    expect((await register("demo-1.0-2")).code).toBe(0);
    expect((await d.cli(["image", "promote", "demo-1.0-1", "--as", "demo"])).stdout).toMatch(/demo -> demo-1.0-1/);
    const shown = await d.cli(["--json", "image", "show", "demo"]);
    expect(shown.json<{ image: { name: string; aliases: string[] } }>().image).toMatchObject({ name: "demo-1.0-1", aliases: ["demo"] });
    const blocked = await d.cli(["image", "rm", "demo-1.0-1"]);
    expect(blocked.code).toBe(1);
    expect(blocked.stderr).toMatch(/alias demo points at image demo-1.0-1/);
    expect((await d.cli(["image", "promote", "demo-1.0-2", "--as", "demo"])).code).toBe(0);
    expect((await d.cli(["--json", "image", "show", "demo"])).json<{ image: { name: string } }>().image.name).toBe("demo-1.0-2");
    // rollback: promote the older build again
    expect((await d.cli(["image", "promote", "demo-1.0-1", "--as", "demo"])).code).toBe(0);
    expect((await d.cli(["image", "ls"])).stdout).toMatch(/demo-1\.0-1\s+demo\s+ok/);
    const rm = await d.cli(["image", "rm", "demo-1.0-2"]);
    expect(rm.code).toBe(0);
    const aliasRm = await d.cli(["image", "rm", "demo"]);
    expect(aliasRm.code).toBe(1);
    expect(aliasRm.stderr).toMatch(/is an alias of demo-1.0-1/);
    const badAlias = await d.cli(["image", "promote", "demo-1.0-1", "--as", "Not OK"]);
    expect(badAlias.stderr).toMatch(/alias name/);
  });

  it("explains a missing image and a bad VM name before doing anything", async () => {
    const r = await d.cli(["vm", "create", "--image", "nosuch"]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/no image named nosuch/);
    expect(r.stderr).toMatch(/banger image register.*make image-debian/);
    const bad = await d.cli(["vm", "create", "--image", "demo", "--name", "My_VM"]);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toMatch(/VM name "My_VM"/);
    expect((await d.cli(["--json", "vm", "ls"])).json<{ vms: unknown[] }>().vms).toEqual([]);
  });

  it("uses exit code 2 for usage errors and prints JSON errors with --json", async () => {
    expect((await d.cli(["vm", "create"])).code).toBe(2);
    expect((await d.cli(["frobnicate"])).code).toBe(2);
    const r = await d.cli(["--json", "image", "show", "nosuch"]);
    expect(r.code).toBe(1);
    expect(r.json<{ error: { code: string } }>().error.code).toBe("IMAGE_NOT_FOUND");
  });

  it("doctor reports one line per check and exits non-zero on FAIL", async () => {
    const r = await d.cli(["--json", "doctor"], { timeoutMs: 120_000 });
    const rep = r.json<{ ok: boolean; checks: { name: string; status: string }[] }>();
    expect(r.code).toBe(rep.ok ? 0 : 1);
    const names = rep.checks.map((c) => c.name);
    for (const n of ["kvm", "kvm-guest", "firecracker", "qemu", "ip", "nft", "mkfs.ext4", "debugfs", "ssh", "state-dir", "ssh-key", "daemon", "bridge", "nat"])
      expect(names).toContain(n);
    expect(rep.checks.find((c) => c.name === "daemon")?.status).toBe("PASS");
    expect(rep.checks.find((c) => c.name.startsWith("image demo-1.0-1"))?.status).toBe("PASS");
    const human = await d.cli(["doctor"], { timeoutMs: 120_000 });
    expect(human.stdout).toMatch(/^(PASS|WARN|FAIL)\s+qemu\s+/m);
  });

  it("marks an image broken when its files change, and refuses to use it", async () => {
    const shown = (await d.cli(["--json", "image", "show", "demo-1.0-1"])).json<{ image: { artifacts: { role: string; path: string }[] } }>();
    const rootfsCopy = shown.image.artifacts.find((a) => a.role === "rootfs")!.path;
    appendFileSync(rootfsCopy, "tamper");
    const doc = await d.cli(["--json", "doctor"], { timeoutMs: 120_000 });
    expect(doc.code).toBe(1);
    const imgCheck = doc.json<{ checks: { name: string; status: string; detail: string }[] }>().checks.find((c) => c.name.startsWith("image demo-1.0-1"));
    expect(imgCheck).toMatchObject({ status: "FAIL", detail: expect.stringContaining("checksum changed") });
    expect((await d.cli(["image", "ls"])).stdout).toMatch(/demo-1\.0-1\s+demo\s+broken: rootfs checksum changed/);
    const r = await d.cli(["vm", "create", "--image", "demo"]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/is broken/);
  });
});

describe.skipIf(skip)(`daemon lifecycle${skip ? ` (skipped: ${skip})` : ""}`, () => {
  it("replaces a crashed daemon's stale socket and refuses a second live daemon", async () => {
    const d = await startTestDaemon();
    try {
      const second = await runIn(d.ns, BANGERD, [], { env: { BANGER_CONFIG: d.configPath }, timeoutMs: 20_000 });
      expect(second.code).toBe(1);
      expect(second.stderr).toMatch(/already running/);
      await d.crash();
      expect(existsSync(d.socket)).toBe(true);
      const down = await d.cli(["image", "ls"]);
      expect(down.code).toBe(1);
      expect(down.stderr).toMatch(/bangerd is not running \(socket .*\): start it with `banger daemon start`/);
      await d.start();
      expect((await d.cli(["image", "ls"])).code).toBe(0);
    } finally {
      await d.destroy();
    }
  });

  it("refuses a config with an unknown key, naming key and file", async () => {
    const dir = mkdtempSync(join(tmpdir(), "banger-badcfg-"));
    const cfg = join(dir, "config.toml");
    writeFileSync(cfg, 'vmm = "qemu"\nbrige = "x"\n');
    const r = await runIn(undefined, BANGER, ["config", "show"], { env: { BANGER_CONFIG: cfg } });
    expect(r.code).toBe(1);
    expect(r.stderr).toContain("unknown key 'brige'");
    expect(r.stderr).toContain(cfg);
    rmSync(dir, { recursive: true, force: true });
  });
});
