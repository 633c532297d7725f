import { execFileSync } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { createVm } from "../../src/app/create.js";
import { removeVm } from "../../src/app/lifecycle.js";
import { BangerError } from "../../src/domain/errors.js";
import { identityProblems, reidentifyScript, type NewIdentity } from "../../src/domain/reidentify.js";
import type { VmmSnapshots } from "../../src/ports/snapshots.js";
import type { VmmSpec } from "../../src/ports/vmm.js";
import { leases } from "../helpers/db.js";
import { withSnapshot } from "../helpers/snap-world.js";
import { world } from "../helpers/app-world.js";

/** A fake snapshot driver that records restores and can fail at one of its steps. */
function fakeSnaps(failAt?: "restore" | "resume") {
  const restored: VmmSpec[] = [];
  /** What the guest's NIC went through, in order: "down", "resume", "up". */
  const link: string[] = [];
  let pid = 5000;
  const snaps: VmmSnapshots = {
    kind: "qemu",
    snapshot: () => Promise.reject(new Error("unused")),
    restore: async (spec) => {
      if (failAt === "restore") throw new BangerError("VMM_FAILED", "incoming migration failed: bad magic");
      restored.push(spec);
      return { kind: "qemu", pid: pid++, pidStart: 1, controlSocket: join(spec.dir, "qmp.sock"), consoleLog: join(spec.dir, "console.log") };
    },
    resume: async () => {
      if (failAt === "resume") throw new BangerError("VMM_FAILED", "guest did not resume");
      link.push("resume");
    },
    setLink: async (_h, up) => {
      link.push(up ? "up" : "down");
    },
  };
  return { snaps, restored, link };
}

type World = ReturnType<typeof world>;

const okStages = (w: World, vmId: string) =>
  w.store
    .events(vmId)
    .filter((e) => e.outcome === "ok")
    .map((e) => e.stage);
const PROXY = ["/usr/bin/banger-vsock", "--socket", "/run/b.sock"];

describe("create from a golden snapshot", () => {
  it("restores, resumes and re-identifies over the channel, on the golden argv, and says so", async () => {
    const { snaps, restored, link } = fakeSnaps();
    const w = world(undefined, 0, {
      snapshots: snaps,
      channelProxy: PROXY,
      shell: (_c, script) => {
        // The NIC is unplugged while the guest still has the golden identity.
        if (script?.includes("reidentified")) expect(link).toEqual(["down", "resume"]);
        return { code: 0, lines: ["reidentified alp"] };
      },
    });
    await withSnapshot(w);
    const logins: (string | undefined)[] = [];
    const waitSsh = w.d.guest.waitSsh.bind(w.d.guest);
    w.d.guest.waitSsh = (t, ms, signal, o) => {
      logins.push(o?.probe === false ? o.command : "probe first");
      return waitSsh(t, ms, signal, o);
    };
    const vm = await createVm(w.d, { image: "deb-1", name: "alp", nat: true });
    expect(vm.bootSource).toBe("snapshot snap-1");
    expect(link).toEqual(["down", "resume", "up"]);
    expect(okStages(w, vm.id)).toEqual(["lease-ip", "tap", "secret", "disks", "nat", "restore", "resume", "reidentify", "wait-ssh", "wait-services", "total"]);
    expect(restored).toHaveLength(1);
    // The golden MAC and command line go to QEMU (they travel in the stream anyway); the TAP and dir are the VM's.
    expect(restored[0]).toMatchObject({ mac: "02:fc:ac:1e:00:09", bootArgs: expect.stringContaining("golden-x"), tap: vm.tap, dir: vm.dir });
    // The re-identity goes over the channel's RUN, not SSH.
    expect(w.shellCalls.map((c) => c.command)).toEqual(["channel:run"]);
    const script = w.shellCalls[0].input!;
    expect(script).toContain(`addr add ${vm.ip}/24 dev eth0`);
    expect(script).toContain(`link set dev eth0 address ${vm.mac}`);
    expect(script).toContain("nameserver 192.0.2.53");
    expect(script).toContain("PRIV");
    // The golden VM's opencode password is in the snapshot: the clone writes its own (the one bangerd
    // stored for it, which readiness then uses) and restarts the service.
    const stored = (await w.d.files.readText(`${w.d.config.secretsDir}/${vm.id}`)).trim();
    expect(stored).toMatch(/^[A-Za-z0-9_-]{32}$/);
    expect(script).toContain(`OPENCODE_SERVER_PASSWORD=${stored}`);
    expect(script).not.toContain("systemctl");
    // One login proves SSH over the new identity, straight away (no banner probe), and restarts the services with it.
    expect(logins).toHaveLength(1);
    expect(logins[0]).toContain("systemctl --no-block restart opencode.service");
  });

  it("--no-wait: the services restart gets a channel session of its own", async () => {
    const { snaps } = fakeSnaps();
    const w = world(undefined, 0, { snapshots: snaps, channelProxy: PROXY, shell: () => ({ code: 0, lines: ["ok"] }) });
    await withSnapshot(w);
    const vm = await createVm(w.d, { image: "deb-1", name: "alp", noWait: true });
    expect(okStages(w, vm.id)).toEqual(["lease-ip", "tap", "secret", "disks", "restore", "resume", "reidentify", "services", "total"]);
    expect(w.shellCalls.map((c) => c.command)).toEqual(["channel:run", "channel:run"]);
    expect(w.shellCalls[1].input).toContain("systemctl --no-block restart opencode.service");
  });

  it("re-identifies over SSH through the channel when the image's banger-channel has no RUN", async () => {
    const { snaps } = fakeSnaps();
    const w = world(undefined, 0, { snapshots: snaps, channelProxy: PROXY, shell: () => ({ code: 0, lines: ["reidentified alp"] }) });
    w.d.channel.run = () => Promise.reject(new BangerError("CHANNEL_UNSUPPORTED", "old banger-channel"));
    await withSnapshot(w);
    const vm = await createVm(w.d, { image: "deb-1", name: "alp" });
    expect(vm.bootSource).toBe("snapshot snap-1");
    expect(w.shellCalls.map((c) => c.command)).toEqual(["sh -s"]);
    expect(w.shellCalls[0].input).toContain(`addr add ${vm.ip}/24 dev eth0`);
  });

  it.each([
    ["no snapshot", undefined, /image deb-1 has no snapshot/],
    ["another VMM version", { version: "qemu 9.0" }, /taken with qemu "qemu 9.0", this host runs "fake"/],
    ["a truncated state file", { stateBytes: 3 }, /state file state.mig is 3 bytes, recorded 10/],
    ["another /root size", { workDiskGib: 99 }, /99 GiB \/root disk/],
  ])("%s: boots cold and records why", async (_what, over, reason) => {
    const { snaps, restored } = fakeSnaps();
    const w = world(undefined, 0, { snapshots: snaps, channelProxy: PROXY });
    if (over) await withSnapshot(w, over);
    const vm = await createVm(w.d, { image: "deb-1", name: "alp" });
    expect(vm.bootSource).toMatch(/^cold: /);
    expect(vm.bootSource).toMatch(reason);
    expect(okStages(w, vm.id)).toContain("spawn-vmm");
    expect(restored).toHaveLength(0);
  });

  it("--cold, no banger-vsock, or no snapshot driver: cold", async () => {
    for (const [opts, cold, reason] of [
      [{ channelProxy: PROXY }, true, /--cold/],
      [{}, false, /banger-vsock is not installed/],
      [{ channelProxy: PROXY, noSnaps: true }, false, /not wired into create/],
    ] as const) {
      const { snaps } = fakeSnaps();
      const w = world(undefined, 0, {
        snapshots: "noSnaps" in opts ? undefined : snaps,
        channelProxy: "channelProxy" in opts ? [...opts.channelProxy] : undefined,
      });
      await withSnapshot(w);
      const vm = await createVm(w.d, { image: "deb-1", name: "alp", cold });
      expect(vm.bootSource).toMatch(reason);
    }
  });

  it.each(["restore", "resume", "reidentify"] as const)("a failure at %s is undone and the same create boots cold", async (stage) => {
    const { snaps } = fakeSnaps(stage === "reidentify" ? undefined : stage);
    const w = world(undefined, 0, {
      snapshots: snaps,
      channelProxy: PROXY,
      shell: () => ({ code: stage === "reidentify" ? 1 : 0, lines: ["ip: RTNETLINK answers: Operation not permitted"] }),
    });
    await withSnapshot(w);
    const vm = await createVm(w.d, { image: "deb-1", name: "alp", nat: true });
    expect(vm.state).toBe("running");
    expect(vm.bootSource).toMatch(new RegExp(`^cold: restore from the snapshot failed at ${stage}: `));
    expect(okStages(w, vm.id)).toEqual(expect.arrayContaining(["rootfs", "spawn-vmm", "start"]));
    // Only the cold VM's resources are held: the failed restore's process, TAP and NAT went with its undo.
    expect(w.held.procs.size).toBe(1);
    expect(w.held.taps.size).toBe(1);
    expect([...w.held.nat]).toEqual([vm.ip]);
    expect(leases(w.store)).toEqual([{ ip: vm.ip, vmId: vm.id }]);
    expect(w.store.listVms().map((v) => v.name)).toEqual(["alp"]);
    await removeVm(w.d, "alp", true);
    expect(w.held.procs.size + w.held.taps.size + w.held.nat.size).toBe(0);
    expect(readdirSync(w.cfg.paths.vmsDir)).toEqual([]);
  });

  it("a failure after re-identity (wait-ssh) fails the create and leaves nothing: no cold retry", async () => {
    const { snaps } = fakeSnaps();
    const w = world("wait-ssh", 0, { snapshots: snaps, channelProxy: PROXY });
    await withSnapshot(w);
    const err = (await createVm(w.d, { image: "deb-1", name: "alp", nat: true }).catch((e: unknown) => e)) as BangerError;
    expect(err.stage).toBe("wait-ssh");
    expect(w.store.listVms()).toEqual([]);
    expect(leases(w.store)).toEqual([]);
    expect(w.held.procs.size + w.held.taps.size + w.held.nat.size).toBe(0);
    expect(readdirSync(w.cfg.paths.vmsDir)).toEqual([]);
  });
});

describe("re-identity script", () => {
  const id: NewIdentity = {
    name: "alp",
    ip: "172.30.0.5",
    prefix: 24,
    gateway: "172.30.0.1",
    mac: "02:fc:ac:1e:00:05",
    nameservers: [],
    hostKey: { privateKey: "-----BEGIN OPENSSH PRIVATE KEY-----\nabc'def\n-----END OPENSSH PRIVATE KEY-----\n", publicKey: "ssh-ed25519 AAA alp" },
    authorizedKeys: "ssh-ed25519 BBB user",
    machineId: "a".repeat(32),
    bootId: "0f0e0d0c-0b0a-4908-8706-050403020100",
    seedHex: "ab".repeat(64),
    nowMs: 1_700_000_000_123,
  };

  it("sets every part of the identity, quoting what it writes", () => {
    const s = reidentifyScript(id);
    expect(s).toContain("date -u -s @1700000000.123");
    expect(s).toContain("0x40085203"); // RNDADDENTROPY
    expect(s).toContain("0x5207"); // RNDRESEEDCRNG
    expect(s).toContain(`printf '%s\\n' '${"a".repeat(32)}' >/etc/machine-id`);
    expect(s).toContain(`abc'\\''def`);
    // sshd reads the host key per connection; a SIGHUP would make it refuse connections while it re-executes.
    expect(s).not.toContain("kill -HUP");
    expect(s).toContain("echo 'alp' >/proc/sys/kernel/hostname");
    expect(s).toContain("# No nameserver: this VM has no NAT.");
    expect(s).toContain("route replace default via 172.30.0.1 dev eth0");
  });

  /** Runs the script under sh with every path it touches moved into a temporary root and stub programs. */
  function runInFakeRoot(programs: string[], pathTail: string[], o: { agent?: boolean; iproute2?: boolean } = { iproute2: true }) {
    const root = mkdtempSync(join(tmpdir(), "reid-"));
    try {
      // As in a golden guest: /etc/ssh/banger and /etc/banger exist, so no mkdir runs.
      for (const d of ["etc/ssh/banger", "etc/banger", "proc/sys/kernel", "sys/class/net/eth0", "var/lib/systemd", "run", "bin"])
        mkdirSync(join(root, d), { recursive: true });
      writeFileSync(join(root, "etc/hosts"), "127.0.0.1\tlocalhost\n127.0.1.1\tgolden\n::1\tip6-localhost\n");
      writeFileSync(join(root, "proc/sys/kernel/hostname"), "golden\n");
      writeFileSync(join(root, "sys/class/net/eth0/address"), `${id.mac}\n`);
      writeFileSync(join(root, "var/lib/systemd/random-seed"), "old");
      const calls = join(root, "calls");
      const stub = (path: string, prog: string) =>
        writeFileSync(path, `#!/bin/sh\necho "run: ${prog} $*" >>${calls}\n[ "$1" != -batch ] || /bin/cat >>${calls}\n`, { mode: 0o755 });
      for (const prog of programs) stub(join(root, "bin", prog), prog);
      if (o.agent) {
        mkdirSync(join(root, "usr/local/sbin"), { recursive: true });
        stub(join(root, "usr/local/sbin/banger-agent"), "banger-agent");
      }
      if (o.iproute2) mkdirSync(join(root, "etc/iproute2"));
      // /proc/uptime stays real; everything the script writes lands under the root.
      const script = reidentifyScript({ ...id, secretFiles: [{ path: "/etc/banger/opencode.env", content: "OPENCODE_SERVER_PASSWORD=x\n" }] }).replace(
        /(?<![\w.])\/(etc|proc\/sys|sys\/class|var\/lib|run|usr\/local\/sbin)\//g,
        `${root}/$1/`,
      );
      const out = execFileSync("/bin/sh", ["-s"], { input: script, env: { PATH: [join(root, "bin"), ...pathTail].join(":") } }).toString();
      const read = (f: string) => readFileSync(join(root, f), "utf8");
      expect(out).toMatch(/^reidentified alp 02:fc:ac:1e:00:05 172.30.0.5 \(guest: kernel=\d+ms keys=\d+ms secrets=\d+ms names=\d+ms net=\d+ms\)\n$/);
      expect(read("etc/hosts")).toBe("127.0.0.1\tlocalhost\n127.0.1.1\talp\n::1\tip6-localhost\n");
      expect(read("proc/sys/kernel/hostname")).toBe("alp\n");
      expect(read("etc/machine-id")).toBe(`${"a".repeat(32)}\n`);
      expect(statSync(join(root, "etc/ssh/ssh_host_ed25519_key")).mode & 0o777).toBe(0o600);
      expect(read("etc/ssh/ssh_host_ed25519_key")).toContain("abc'def");
      expect(statSync(join(root, "etc/banger/opencode.env")).mode & 0o777).toBe(0o600);
      expect(read("run/banger-boot_id")).toBe(`${id.bootId}\n`);
      const log = read("calls");
      if (o.iproute2) expect(log).toContain("run: ip -batch -\nlink set dev eth0 down\nlink set dev eth0 address 02:fc:ac:1e:00:05\n");
      else
        expect(log).toContain(
          "run: ip link set dev eth0 down\nrun: ip link set dev eth0 address 02:fc:ac:1e:00:05\nrun: ip addr flush dev eth0\nrun: ip link set dev eth0 up\n" +
            "run: ip addr add 172.30.0.5/24 dev eth0\nrun: ip route replace default via 172.30.0.1 dev eth0\n",
        );
      return { root, log };
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  }

  it("with perl: two programs in all (perl for clock, entropy and boot_id; ip), and only the 127.0.1.1 line of /etc/hosts changes", () => {
    const { root, log } = runInFakeRoot(["perl", "ip"], ["/usr/bin", "/bin"]);
    expect(log.match(/^run: \S+/gm)).toEqual(["run: perl", "run: ip"]);
    // The clock as seconds and nanoseconds, then the seed; the bind mount and the seed file are perl's.
    expect(log).toMatch(/^run: perl -e .* 1700000000 123000000 (ab){64}\n/s);
    expect(log).toContain(`syscall(165, $src, $dst, 0, 4096, 0)`);
    expect(log).toContain(`("${root}/run/banger-boot_id", "${root}/proc/sys/kernel/random/boot_id")`);
  });

  it("without perl: date, mount, rm and ip do the same", () => {
    const { root, log } = runInFakeRoot(["date", "mount", "rm", "ip"], []);
    expect(log.match(/^run: \S+/gm)).toEqual(["run: date", "run: mount", "run: rm", "run: ip"]);
    expect(log).toContain("run: date -u -s @1700000000.123\n");
    expect(log).toContain(`run: mount --bind ${root}/run/banger-boot_id ${root}/proc/sys/kernel/random/boot_id\n`);
  });

  it("with banger-agent (every current image): it alone does clock, entropy and boot_id, before perl is even looked for", () => {
    const { log } = runInFakeRoot(["perl", "ip"], ["/usr/bin", "/bin"], { agent: true, iproute2: true });
    expect(log.match(/^run: \S+/gm)).toEqual(["run: banger-agent", "run: ip"]);
    expect(log).toContain(`run: banger-agent identity 1700000000 123000000 ${"ab".repeat(64)}\n`);
  });

  it("on busybox (Alpine: the agent, no perl, no iproute2): the agent, then one ip per step", () => {
    const { log } = runInFakeRoot(["ip"], [], { agent: true, iproute2: false });
    expect(log.match(/^run: \S+/gm)).toEqual(["run: banger-agent", ...Array<string>(6).fill("run: ip")]);
  });

  it("refuses an identity that would not parse in the guest", () => {
    expect(identityProblems({ ...id, mac: "02:FC:zz:1e:00:05", machineId: "x", seedHex: "ab", ip: "1.2.3", name: "A B", bootId: "x" })).toHaveLength(6);
    expect(() => reidentifyScript({ ...id, ip: "1.2.3" })).toThrow(/ip 1.2.3 is not IPv4/);
  });
});
