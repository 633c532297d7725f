import { closeSync, existsSync, openSync, readFileSync, readdirSync, writeSync } from "node:fs";
import { join } from "node:path";
import Database from "better-sqlite3";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { built, startTestDaemon, type TestDaemon } from "../helpers/daemon.js";
import { builtDebianImage, guestSkipReason, registerArgs } from "../helpers/guest-image.js";
import { hostLeftovers } from "../helpers/leaks.js";
import { createNetns, createUpstream, type Netns, type Upstream } from "../helpers/netns.js";

const skip = built() ?? guestSkipReason();

interface VmJson {
  vm: { name: string; ip: string; mac: string; dir: string; bootSource?: string; pid?: number };
  events: { op: string; stage: string; outcome: string; detail?: string; durationMs: number }[];
}

/**
 * One golden boot (`image snapshot`), two VMs restored from it with NAT, and one create from a
 * snapshot corrupted behind banger's back (same size, so only the restore itself can notice),
 * which must fall back to a cold boot. Guests are shared between the assertions: TCG boots are slow.
 */
describe.skipIf(skip)(`e2e: create from a golden snapshot under QEMU${skip ? ` (skipped: ${skip})` : ""}`, () => {
  let ns: Netns;
  let up: Upstream;
  let d: TestDaemon;
  const vms: Record<string, VmJson> = {};
  let snapshotId = "";
  let snapshotDir = "";

  const ssh = async (name: string, cmd: string) => {
    const r = await d.cli(["vm", "ssh", name, "--", cmd], { timeoutMs: 120_000 });
    expect(r.stderr, `${name}: ${cmd}`).toBe("");
    return r.stdout.trim();
  };
  const create = async (name: string, extra: string[] = []) => {
    const r = await d.cli(["--json", "vm", "create", "--image", "debian-snap-1", "--name", name, "--nat", ...extra], { timeoutMs: 900_000 });
    if (r.code !== 0) console.error(r.stdout, r.stderr);
    expect(r.code).toBe(0);
    const out = r.json<VmJson>();
    const show = (await d.cli(["--json", "vm", "show", name])).json<VmJson>();
    vms[name] = { vm: show.vm, events: out.events };
    console.log(`${name}: ${out.events.map((e) => `${e.stage}=${Math.round(e.durationMs)}ms`).join(" ")}`);
    return vms[name];
  };

  beforeAll(async () => {
    ns = await createNetns("snap");
    up = await createUpstream(ns);
    d = await startTestDaemon({ ns, config: { memory_mib: 1024, work_disk_gib: 2 } });
    const reg = await d.cli(registerArgs(builtDebianImage()!, "debian-snap-1", { services: false }), { timeoutMs: 300_000 });
    expect(reg.stderr).toBe("");
  });

  afterAll(async () => {
    await d?.destroy();
    await up?.destroy();
    await ns?.destroy();
  });

  it("image snapshot boots a hidden golden VM, snapshots it, tears it down and lists the snapshot", async () => {
    const r = await d.cli(["--json", "image", "snapshot", "debian-snap-1"], { timeoutMs: 900_000 });
    if (r.code !== 0) console.error(r.stdout, r.stderr);
    expect(r.code).toBe(0);
    const { snapshot } = r.json<{ snapshot: { id: string; dir: string; stages: { stage: string; ms: number; detail?: string }[] } }>();
    console.log(`snapshot: ${snapshot.stages.map((s) => `${s.stage}=${s.ms}ms`).join(" ")}`);
    snapshotId = snapshot.id;
    snapshotDir = snapshot.dir;
    expect(snapshot.stages.map((s) => s.stage)).toEqual(expect.arrayContaining(["channel-check", "quiesce", "snapshot", "verify"]));
    expect(readdirSync(snapshotDir).sort()).toEqual(["rootfs.ext4", "snapshot.json", "state.mig", "work.ext4"]);
    // The golden VM is gone: no row, no VM dir, no process; `image show` lists the snapshot.
    expect(readdirSync(join(d.stateDir, "vms"))).toEqual([]);
    expect((await hostLeftovers(ns)).vmmProcesses).toEqual([]);
    const show = await d.cli(["image", "show", "debian-snap-1"]);
    expect(show.stdout).toContain(snapshotId);
  });

  it("two VMs created from it answer SSH as themselves, on their own IPs", async () => {
    for (const name of ["sa", "sb"]) {
      const { vm, events } = await create(name);
      expect(vm.bootSource).toBe(`snapshot ${snapshotId}`);
      const ok = events.filter((e) => e.op === "create" && e.outcome === "ok").map((e) => e.stage);
      expect(ok).toEqual(["lease-ip", "tap", "secret", "disks", "nat", "restore", "resume", "reidentify", "wait-ssh", "wait-services", "total"]);
      // The re-identity went over the channel's RUN verb, not SSH.
      expect(events.find((e) => e.stage === "reidentify" && e.outcome === "ok")?.detail).toMatch(/via channel$/);
      // The warm disk pool keeps copies of the snapshot's disks (refilled after image snapshot and after each
      // create); by the second create, seconds later, one is ready.
      if (name === "sb") expect(events.find((e) => e.stage === "disks" && e.outcome === "ok")?.detail).toMatch(/\(warm pool\)$/);
      expect((await d.cli(["vm", "show", name])).stdout).toContain(`from snapshot ${snapshotId}`);
      // vm ssh checks the VM's known_hosts strictly: the new host key is the one answering.
      expect(await ssh(name, "hostname; cat /etc/hostname")).toBe(`${name}\n${name}`);
      expect(await ssh(name, "ip -4 -o addr show dev eth0 | awk '{print $4}'")).toBe(`${vm.ip}/24`);
      expect(await ssh(name, "cat /sys/class/net/eth0/address")).toBe(vm.mac);
    }
    expect(vms.sa.vm.ip).not.toBe(vms.sb.vm.ip);
    expect(vms.sa.vm.mac).not.toBe(vms.sb.vm.mac);
  });

  it("they differ in host key, machine-id, boot_id reading and entropy", async () => {
    const facts = async (name: string) => ({
      hostKey: await ssh(name, "cat /etc/ssh/ssh_host_ed25519_key.pub"),
      machineId: await ssh(name, "cat /etc/machine-id"),
      bootId: await ssh(name, "cat /proc/sys/kernel/random/boot_id"),
      random: await ssh(name, "head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \\n'"),
      clockSkewS: Math.abs(Number(await ssh(name, "date +%s")) - Date.now() / 1000),
      opencodeEnv: await ssh(name, "cat /etc/banger/opencode.env; stat -c %a /etc/banger/opencode.env"),
      // What bangerd stored for this VM (state_dir/secrets/<id>): what readiness and `vm show --show-secret` use.
      password: await (async () => {
        const vm = (await d.cli(["--json", "vm", "show", name])).json<{ vm: { id: string; dir: string } }>().vm;
        return readFileSync(join(vm.dir, "..", "..", "secrets", vm.id), "utf8");
      })(),
    });
    const a = await facts("sa");
    const b = await facts("sb");
    expect(a.hostKey).not.toBe(b.hostKey);
    expect(a.machineId).toMatch(/^[0-9a-f]{32}$/);
    expect(a.machineId).not.toBe(b.machineId);
    expect(a.random).not.toBe(b.random);
    // The golden VM's opencode password is in the snapshot; each clone holds its own, root-only,
    // and it is the one banger shows for that VM.
    expect(a.opencodeEnv).not.toBe(b.opencodeEnv);
    // The golden opencode ran with the golden password; re-identity restarts it with the clone's.
    let state = "";
    for (let i = 0; i < 90 && state !== "active"; i++) {
      state = (await d.cli(["vm", "ssh", "sa", "--", "systemctl is-active opencode"], { timeoutMs: 60_000 })).stdout.trim();
      if (state !== "active") await new Promise((r) => setTimeout(r, 2_000));
    }
    expect(state).toBe("active");
    // The running server holds the clone's password, not the golden one it was snapshotted with.
    const env = await ssh("sa", "tr '\\0' '\\n' </proc/$(systemctl show -p MainPID --value opencode)/environ | grep ^OPENCODE_SERVER_PASSWORD=");
    expect(a.opencodeEnv.split("\n")[0]).toBe(env);
    for (const f of [a, b]) {
      const pw = /OPENCODE_SERVER_PASSWORD=(\S+)/.exec(f.opencodeEnv)?.[1];
      expect(pw, f.opencodeEnv).toBeTruthy();
      expect(f.opencodeEnv.trim().endsWith("600")).toBe(true);
      expect(f.password).toContain(pw!);
    }
    // The clock was stepped to the host's at re-identity (generous: a loaded TCG guest drifts).
    expect(a.clockSkewS).toBeLessThan(120);
    // The kernel's boot_id is the golden boot's in both (write-once); re-identity binds each clone's own over it.
    expect(a.bootId).toMatch(/^[0-9a-f]{8}(-[0-9a-f]{4}){3}-[0-9a-f]{12}$/);
    expect(a.bootId).not.toBe(b.bootId);
  });

  it("both reach the upstream through NAT", async () => {
    const srv = await up.startHttpServer(8080);
    try {
      for (const name of ["sa", "sb"]) {
        const out = await ssh(name, `exec 3<>/dev/tcp/${up.address}/8080 && printf 'GET /${name} HTTP/1.0\\r\\n\\r\\n' >&3 && head -1 <&3`);
        expect(out).toMatch(/HTTP\/1\.[01] 200/);
      }
      expect(await srv.peers()).toContain(up.vmAddress);
    } finally {
      await srv.stop();
    }
  });

  it("their disks are independent", async () => {
    await ssh("sa", "echo only-a > /root/only-a && echo only-a > /etc/only-a && sync");
    expect(await ssh("sb", "ls /root/only-a /etc/only-a 2>&1 | wc -l; test -e /root/only-a || test -e /etc/only-a || echo absent")).toMatch(/absent$/);
    expect(await ssh("sa", "cat /root/only-a /etc/only-a")).toBe("only-a\nonly-a");
  });

  it("a snapshot corrupted inside (same size) is refused at restore and the create boots cold, saying why", async () => {
    // Overwrite the migration stream's header: the shallow check (sizes) passes, QEMU's load fails.
    const fd = openSync(join(snapshotDir, "state.mig"), "r+");
    writeSync(fd, Buffer.alloc(4096, 0x5a), 0, 4096, 0);
    closeSync(fd);
    const { vm, events } = await create("sc");
    expect(vm.bootSource).toMatch(/^cold: restore from the snapshot failed at restore/);
    expect(events.filter((e) => e.op === "create" && e.outcome === "ok").map((e) => e.stage)).toContain("spawn-vmm");
    expect(await ssh("sc", "hostname")).toBe("sc");
  });

  it("vm rm leaves nothing; image rm removes the snapshot with the image", async () => {
    for (const name of Object.keys(vms)) expect((await d.cli(["vm", "rm", name, "--force"], { timeoutMs: 120_000 })).code).toBe(0);
    expect(readdirSync(join(d.stateDir, "vms"))).toEqual([]);
    const db = new Database(join(d.stateDir, "banger.db"), { readonly: true });
    try {
      expect(db.prepare("select count(*) n from ip_leases").get()).toEqual({ n: 0 });
      expect(db.prepare("select count(*) n from vms").get()).toEqual({ n: 0 });
    } finally {
      db.close();
    }
    expect(await hostLeftovers(ns)).toEqual({ natElements: [], nonPoolTaps: [], vmmProcesses: [] });
    expect((await d.cli(["image", "rm", "debian-snap-1"])).code).toBe(0);
    expect(existsSync(snapshotDir)).toBe(false);
  });
});
