import { readdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { world } from "../helpers/app-world.js";
import { createVm } from "../../src/app/create.js";
import { removeVm } from "../../src/app/lifecycle.js";
import { serviceAccess } from "../../src/app/vm-access.js";
import { DiskPool } from "../../src/app/disk-pool.js";
import type { Disks, InjectedFile } from "../../src/ports/disks.js";
import type { Guest } from "../../src/ports/guest.js";

/** A world whose disks record what was injected into which rootfs. */
function recording(poolSize = 0) {
  const injected: { image: string; files: InjectedFile[] }[] = [];
  const disks: Disks = {
    cloneRootfs: async (_s, dst) => writeFileSync(dst, "rootfs"),
    makeWorkDisk: async (dst) => writeFileSync(dst, "work"),
    inject: async (image, files) => {
      injected.push({ image, files });
    },
    ext4Problem: async () => undefined,
    hasFile: async () => false,
  };
  const w = world(undefined, 0, { disks });
  if (poolSize > 0) w.d.diskPool = new DiskPool(w.d, { dir: join(w.cfg.paths.stateDir, "pool"), size: poolSize, maxGib: 0 });
  const envFiles = () => injected.flatMap((i) => i.files.filter((f) => f.path === "/etc/banger/opencode.env").map((f) => ({ image: i.image, ...f })));
  return { ...w, injected, envFiles };
}

const passwordOf = (content: string | Buffer) => /^OPENCODE_SERVER_PASSWORD=([A-Za-z0-9_-]{32})\n$/.exec(content.toString())?.[1];

describe("per-VM service passwords", () => {
  it("writes a random password root-only into the guest and 0600 under state_dir/secrets (0700)", async () => {
    const w = recording();
    const vm = await createVm(w.d, { image: "deb-1", name: "a" });
    const [env] = w.envFiles();
    expect(env.mode).toBe(0o600);
    const pw = passwordOf(env.content);
    expect(pw).toBeDefined();
    const stored = join(w.d.config.secretsDir, vm.id);
    expect(readFileSync(stored, "utf8").trim()).toBe(pw);
    expect(statSync(stored).mode & 0o777).toBe(0o600);
    expect(statSync(w.d.config.secretsDir).mode & 0o777).toBe(0o700);

    // Shown only when asked for.
    expect(await serviceAccess(w.d, vm, false)).toEqual([{ service: "opencode", url: `http://${vm.ip}:4096/`, username: "opencode", protected: true }]);
    expect((await serviceAccess(w.d, vm, true))[0].password).toBe(pw);

    await removeVm(w.d, "a", true);
    expect(() => statSync(stored)).toThrow(/ENOENT/);
  });

  it("never lets two VMs share a password, warm pool sets included", async () => {
    const w = recording(2);
    const img = w.d.store.getImage("deb-1")!;
    w.d.diskPool.refill(img);
    await w.d.diskPool.settled();
    const a = await createVm(w.d, { image: "deb-1", name: "a" });
    const b = await createVm(w.d, { image: "deb-1", name: "b" });
    const c = await createVm(w.d, { image: "deb-1", name: "c" });
    // The pool sets' own injections carry identity only; every password is written into a VM's dir at create.
    const envs = w.envFiles();
    expect(envs.map((e) => e.image)).toEqual([a, b, c].map((v) => join(v.dir, "rootfs.ext4")));
    const pws = envs.map((e) => passwordOf(e.content));
    expect(new Set(pws).size).toBe(3);
    await w.d.diskPool.close();
  });

  it("the readiness check authenticates, and refuses a service that answers without the password", async () => {
    const w = recording();
    const seen: Record<string, string>[] = [];
    const honest: Guest["httpStatus"] = async (_h, _p, _path, headers) => {
      seen.push(headers);
      return headers.authorization ? 200 : 401;
    };
    w.d.guest = { ...w.d.guest, httpStatus: honest };
    const vm = await createVm(w.d, { image: "deb-1", name: "ok" });
    const pw = readFileSync(join(w.d.config.secretsDir, vm.id), "utf8").trim();
    expect(seen[0]).toEqual({ authorization: `Basic ${Buffer.from(`opencode:${pw}`).toString("base64")}` });
    expect(seen.at(-1)).toEqual({});
    expect(w.store.events(vm.id).find((e) => e.stage === "wait-services")?.detail).toBe("opencode:4096 (password checked)");

    // A loaded guest that misses a probe is asked again, not failed.
    let missed = 0;
    w.d.guest = {
      ...w.d.guest,
      httpStatus: async (_h, _p, _path, headers) => {
        if (!headers.authorization && missed++ === 0) throw new Error("no HTTP answer within 10000 ms");
        return headers.authorization ? 200 : 401;
      },
    };
    await createVm(w.d, { image: "deb-1", name: "slow" });
    expect(missed).toBe(2);
    await removeVm(w.d, "slow", true);

    w.d.guest = { ...w.d.guest, httpStatus: async () => 200 };
    await expect(createVm(w.d, { image: "deb-1", name: "open" })).rejects.toMatchObject({
      code: "GUEST_NOT_READY",
      message: expect.stringMatching(/answered 200 without the password, not 401/),
    });
    // The failed create took its password with it.
    expect(w.store.getVm("open")).toBeUndefined();
    expect(readdirSync(w.d.config.secretsDir)).toEqual([vm.id]);
  });
});
