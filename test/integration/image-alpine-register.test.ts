import { spawnSync } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { fakeElfKernel, fakeInitrd, realExt4 } from "../helpers/artifacts.js";
import { REPO, built, startTestDaemon, type TestDaemon } from "../helpers/daemon.js";
import { netnsSkipReason } from "../helpers/netns.js";

// No Alpine packages here (CI is offline): the bad-input paths fail before any
// download, and registration runs build.sh's own functions on a synthetic boot set.
const skip = built() ?? netnsSkipReason();

describe.skipIf(skip)(`make image-alpine: bad input and registration against a test bangerd${skip ? ` (skipped: ${skip})` : ""}`, () => {
  let d: TestDaemon;
  const tmp = mkdtempSync(join(tmpdir(), "banger-alpine-reg-"));
  const env = () => ({ ...process.env, BANGER_CONFIG: d.configPath, XDG_DATA_HOME: join(d.dir, "data"), BANGER_ALPINE_MIRROR: "" });
  const build = (...args: string[]) => spawnSync("bash", [join(REPO, "images/alpine/build.sh"), ...args], { env: env(), encoding: "utf8", timeout: 120_000 });
  const images = async () => (await d.cli(["--json", "image", "ls"])).json<{ images: { name: string; aliases: string[] }[] }>().images;

  beforeAll(async () => {
    d = await startTestDaemon();
    // A local mirror that resolves (so --kernel-from is what fails) but holds nothing usable.
    mkdirSync(join(tmp, "mirror/v3.19/main/x86_64"), { recursive: true });
    spawnSync("touch", [join(tmp, "mirror/v3.19/main/x86_64/APKINDEX.tar.gz")]);
  });
  afterAll(async () => {
    await d?.destroy();
    rmSync(tmp, { recursive: true, force: true });
  });

  it.each([
    ["unknown branch", ["--branch", "v9.9", "--mirror", "MIRROR"], /error: unknown Alpine branch v9\.9: this build pins v3\.19/],
    ["bad mirror path", ["--mirror", "/nonexistent/alpine"], /error: mirror \/nonexistent\/alpine: no such directory/],
    ["empty mirror dir", ["--mirror", "EMPTY"], /no v3\.19\/<repo>\/x86_64\/APKINDEX\.tar\.gz, no x86_64\/APKINDEX\.tar\.gz and no \.apk files/],
    [
      "unregistered --kernel-from",
      ["--mirror", "MIRROR", "--kernel-from", "no-such-image"],
      /error: --kernel-from no-such-image: not a registered image .*no image named no-such-image/,
    ],
    [
      "--kernel-from a dir without a boot set",
      ["--mirror", "MIRROR", "--kernel-from", "EMPTY"],
      /--kernel-from .*: a directory needs vmlinux and initramfs\.cpio\.gz/,
    ],
    ["unknown stage", ["everything"], /unknown stage everything/],
  ])("%s: a clear error, nothing registered", async (_name, args, msg) => {
    mkdirSync(join(tmp, "empty"), { recursive: true });
    const argv = (args as string[]).map((a) => a.replace("MIRROR", join(tmp, "mirror")).replace("EMPTY", join(tmp, "empty")));
    const r = build(...(argv[0].startsWith("--") ? ["all", ...argv] : argv));
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(msg as RegExp);
    expect(await images()).toEqual([]);
  });

  function registerSynthetic(name: string): { status: number | null; out: string } {
    const out = join(tmp, name);
    mkdirSync(out, { recursive: true });
    fakeElfKernel(out);
    spawnSync("mv", [fakeInitrd(out), join(out, "initramfs.cpio.gz")]);
    realExt4(out, "rootfs.ext4");
    realExt4(out, "work-seed.ext4");
    const script = `source images/alpine/build.sh; IMAGE_NAME=${name} OUT=${out} KERNEL_BOOT_ARGS= register_image`;
    const r = spawnSync("bash", ["-c", script], { cwd: REPO, env: env(), encoding: "utf8", timeout: 120_000 });
    return { status: r.status, out: r.stdout + r.stderr };
  }

  it("registers with the opencode readiness ceiling and promotes as alpine; promoting the older build is the rollback", async () => {
    const first = registerSynthetic("alpine-3.19.4-20260101-aaaaaaaa");
    expect(first.status, first.out).toBe(0);
    expect(first.out).toMatch(/registered alpine-3\.19\.4-20260101-aaaaaaaa/);
    const show = (await d.cli(["--json", "image", "show", "alpine"])).json<{
      image: { name: string; bootArgs: string; guest: { os: string; services: { name: string; port: number; timeoutMs?: number }[] } };
    }>().image;
    expect(show.name).toBe("alpine-3.19.4-20260101-aaaaaaaa");
    expect(show.guest.os).toBe("alpine");
    expect(show.guest.services).toEqual(expect.arrayContaining([{ name: "opencode", port: 4096, timeoutMs: 300_000 }]));
    expect(show.bootArgs).toMatch(/rootfstype=ext4/);

    expect(registerSynthetic("alpine-3.19.4-20260102-bbbbbbbb").status).toBe(0);
    expect((await images()).find((i) => i.aliases.includes("alpine"))?.name).toBe("alpine-3.19.4-20260102-bbbbbbbb");
    expect(registerSynthetic("alpine-3.19.4-20260102-bbbbbbbb").out).toMatch(/already registered/);
    expect((await d.cli(["image", "promote", "alpine-3.19.4-20260101-aaaaaaaa", "--as", "alpine"])).code).toBe(0);
    expect((await images()).find((i) => i.aliases.includes("alpine"))?.name).toBe("alpine-3.19.4-20260101-aaaaaaaa");
  });
});
