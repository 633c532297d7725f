import { spawnSync } from "node:child_process";
import { existsSync, lstatSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, readlinkSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { REPO } from "../helpers/daemon.js";

const skip = process.getuid?.() !== 0 ? "needs root (the tree is chowned to 0:0 as in a real build)" : undefined;
const tmp = mkdtempSync(join(tmpdir(), "banger-openrc-"));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

/** Runs images/alpine/openrc.sh's functions in bash against `root`. */
function sh(script: string): { code: number; out: string } {
  const r = spawnSync("bash", ["-c", `set -euo pipefail; source images/lib/common.sh; source images/lib/agent.sh; source images/alpine/openrc.sh; ${script}`], {
    cwd: REPO,
    encoding: "utf8",
    timeout: 30_000,
  });
  return { code: r.status ?? 1, out: `${r.stdout}${r.stderr}` };
}

// What the minirootfs + openrc + openssh-server put in /etc/init.d, as stubs.
const STOCK = ["sysfs", "devfs", "dmesg", "hostname", "bootmisc", "localmount", "networking", "sshd", "killprocs", "mount-ro", "savecache"];

function syntheticTree(name: string): string {
  const root = join(tmp, name);
  for (const d of ["etc/init.d", "etc/conf.d", "etc/ssh", "root", "var/log", "var/cache/apk", "tmp"]) mkdirSync(join(root, d), { recursive: true });
  for (const s of STOCK) writeFileSync(join(root, "etc/init.d", s), "#!/sbin/openrc-run\n", { mode: 0o755 });
  writeFileSync(join(root, "etc/ssh/ssh_host_rsa_key"), "stale");
  writeFileSync(join(root, "root/.ash_history"), "x");
  writeFileSync(join(root, "var/cache/apk/APKINDEX.x.tar.gz"), "x");
  writeFileSync(join(tmp, "opencode"), "#!/bin/sh\necho 1.18.32\n", { mode: 0o755 });
  writeFileSync(join(tmp, "banger-agent"), "agent bytes\n", { mode: 0o600 });
  return root;
}

describe.skipIf(skip)(`OpenRC seeding on a synthetic Alpine tree${skip ? ` (skipped: ${skip})` : ""}`, () => {
  const root = syntheticTree("alpine");

  it("configures the tree offline", () => {
    const r = sh(`configure_alpine_rootfs ${root} ${join(tmp, "opencode")} ${join(tmp, "banger-agent")}`);
    expect(r.out).toBe("");
    expect(r.code).toBe(0);
  });

  it("seeds runlevels as symlinks into /etc/init.d", () => {
    const levels = Object.fromEntries(["sysinit", "boot", "default", "shutdown"].map((l) => [l, readdirSync(join(root, "etc/runlevels", l)).sort()]));
    expect(levels).toEqual({
      sysinit: ["devfs", "dmesg", "sysfs"],
      boot: ["bootmisc", "hostname", "localmount", "networking"],
      default: ["banger-agent", "banger-hostkey", "opencode", "sshd"],
      shutdown: ["killprocs", "mount-ro", "savecache"],
    });
    for (const [level, svcs] of Object.entries(levels)) {
      for (const s of svcs) {
        expect(lstatSync(join(root, "etc/runlevels", level, s)).isSymbolicLink()).toBe(true);
        expect(readlinkSync(join(root, "etc/runlevels", level, s))).toBe(`/etc/init.d/${s}`);
      }
    }
  });

  it("network from ip= through ifupdown-ng's eth0 hook, the same banger-net as Debian", () => {
    expect(readFileSync(join(root, "etc/network/interfaces"), "utf8")).toMatch(/auto eth0\niface eth0\n\tup \/usr\/local\/sbin\/banger-net/);
    expect(readFileSync(join(root, "usr/local/sbin/banger-net"))).toEqual(readFileSync(join(REPO, "images/debian/files/usr/local/sbin/banger-net")));
    expect(statSync(join(root, "usr/local/sbin/banger-net")).mode & 0o777).toBe(0o755);
  });

  it("sshd uses only the injected key; no host key ships, no keygen at boot", () => {
    expect(readdirSync(join(root, "etc/ssh")).filter((f) => f.startsWith("ssh_host_"))).toEqual([]);
    expect(readFileSync(join(root, "etc/ssh/sshd_config.d/banger.conf"), "utf8")).toMatch(/^HostKey \/etc\/ssh\/ssh_host_ed25519_key$/m);
    expect(readFileSync(join(root, "etc/ssh/sshd_config.d/banger.conf"), "utf8")).toMatch(/AuthorizedKeysFile .* \/etc\/ssh\/banger\/authorized_keys/);
    expect(existsSync(join(root, "etc/ssh/banger"))).toBe(true);
    expect(readFileSync(join(root, "etc/conf.d/sshd"), "utf8")).toMatch(/^sshd_disable_keygen="yes"$/m);
  });

  it("getty on ttyS0 only, Ctrl-Alt-Del reboots, /dev/vdb on /root", () => {
    const inittab = readFileSync(join(root, "etc/inittab"), "utf8");
    expect(inittab).toMatch(/^ttyS0::respawn:\/sbin\/getty .*ttyS0/m);
    expect(inittab).not.toMatch(/^tty1::/m);
    expect(inittab).toMatch(/^::ctrlaltdel:\/sbin\/reboot$/m);
    expect(readFileSync(join(root, "etc/fstab"), "utf8")).toMatch(/^\/dev\/vdb \/root ext4 \S*nofail/m);
  });

  it("opencode serves on :4096 under supervise-daemon, after the network and /root", () => {
    const svc = readFileSync(join(root, "etc/init.d/opencode"), "utf8");
    expect(svc).toMatch(/^supervisor=supervise-daemon$/m);
    expect(svc).toMatch(/^command_args="serve --port 4096 --hostname 0\.0\.0\.0"$/m);
    expect(svc).toMatch(/need net localmount/);
    // The password banger injects; without it the service refuses to start.
    expect(svc).toMatch(/\. \/etc\/banger\/opencode\.env/);
    expect(statSync(join(root, "usr/local/bin/opencode")).mode & 0o777).toBe(0o755);
    expect(spawnSync("sh", ["-n", join(root, "etc/init.d/opencode")]).status).toBe(0);
  });

  it("banger-agent: installed root-owned 0755, supervised and respawned forever, before sshd", () => {
    const st = statSync(join(root, "usr/local/sbin/banger-agent"));
    expect([st.mode & 0o777, st.uid, st.gid]).toEqual([0o755, 0, 0]);
    expect(readFileSync(join(root, "usr/local/sbin/banger-agent"), "utf8")).toBe("agent bytes\n");
    const svc = readFileSync(join(root, "etc/init.d/banger-agent"), "utf8");
    expect(svc).toMatch(/^supervisor=supervise-daemon$/m);
    expect(svc).toMatch(/^command=\/usr\/local\/sbin\/banger-agent$/m);
    expect(svc).toMatch(/^respawn_max=0$/m);
    expect(svc).toMatch(/^respawn_delay=1$/m);
    expect(svc).toMatch(/before sshd opencode/);
    expect(svc).not.toMatch(/need net/);
    expect(statSync(join(root, "etc/init.d/banger-agent")).mode & 0o777).toBe(0o755);
    expect(spawnSync("sh", ["-n", join(root, "etc/init.d/banger-agent")]).status).toBe(0);
  });

  it("leaves /root empty (a mount point) and drops caches", () => {
    expect(readdirSync(join(root, "root"))).toEqual([]);
    expect(statSync(join(root, "root")).mode & 0o777).toBe(0o700);
    expect(readdirSync(join(root, "var/cache/apk"))).toEqual([]);
    expect(readFileSync(join(root, "etc/hostname"), "utf8")).toBe("alpine\n");
  });

  it("a runlevel entry without its init script is an error naming it", () => {
    const bare = syntheticTree("bare");
    rmSync(join(bare, "etc/init.d/sshd"));
    const out = sh(`install_guest_files ${bare}; seed_runlevels ${bare}`);
    expect(out.code).toBe(1);
    expect(out.out).toMatch(/OpenRC service sshd has no \/etc\/init\.d\/sshd/);
  });

  it("builds the work seed: /root's first contents", () => {
    const seed = join(tmp, "seed");
    expect(sh(`build_work_seed_tree ${seed}`).code).toBe(0);
    expect(readdirSync(seed).sort()).toEqual([".cache", ".config", ".local", ".profile", ".ssh"]);
    expect(statSync(join(seed, ".ssh")).mode & 0o777).toBe(0o700);
    expect(existsSync(join(seed, ".local/share/opencode"))).toBe(true);
  });
});

describe("the Alpine and Void scripts parse", () => {
  const scripts = ["images/alpine", "images/void", "images/lib"].flatMap((d) =>
    existsSync(join(REPO, d))
      ? readdirSync(join(REPO, d))
          .filter((f) => f.endsWith(".sh"))
          .map((f) => join(d, f))
      : [],
  );
  it.each(scripts)("bash -n %s", (s) => {
    const res = spawnSync("bash", ["-n", join(REPO, s)], { encoding: "utf8" });
    expect(res.stderr).toBe("");
    expect(res.status).toBe(0);
  });
});
