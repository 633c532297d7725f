import { spawnSync } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, readdirSync, readlinkSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { VOID, parseXbpsList, voidManifest } from "../../images/void/pin.js";
import { REPO } from "../helpers/daemon.js";

const tmp = mkdtempSync(join(tmpdir(), "banger-void-"));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const sh = (script: string) => {
  const r = spawnSync("bash", ["-c", `set -euo pipefail; source images/lib/common.sh; source images/lib/agent.sh; source images/void/runit.sh; ${script}`], {
    cwd: REPO,
    encoding: "utf8",
    timeout: 30_000,
  });
  return { code: r.status ?? 1, out: `${r.stdout}${r.stderr}` };
};

describe("Void runit services on a synthetic rootfs", () => {
  const root = join(tmp, "void");
  mkdirSync(join(root, "etc/sv/agetty-ttyS0"), { recursive: true });
  mkdirSync(join(root, "etc/sv/sshd"), { recursive: true });
  mkdirSync(join(root, "etc/ssh"), { recursive: true });
  mkdirSync(join(root, "root"), { recursive: true });
  writeFileSync(join(root, "etc/ssh/sshd_config"), "#stock\nSubsystem sftp /usr/libexec/sftp-server\n");
  writeFileSync(join(root, "etc/ssh/ssh_host_rsa_key"), "stale");
  writeFileSync(join(tmp, "opencode"), "#!/bin/sh\n", { mode: 0o755 });
  writeFileSync(join(tmp, "banger-agent"), "agent bytes\n", { mode: 0o600 });

  it("configures the tree", () => {
    const r = sh(`configure_void_rootfs ${root} ${join(tmp, "opencode")} ${join(tmp, "banger-agent")}`);
    expect(r.out).toBe("");
    expect(r.code).toBe(0);
  });

  it("enables exactly banger-agent, banger-net, banger-sshd, opencode and the serial getty", () => {
    const dir = join(root, "etc/runit/runsvdir/default");
    expect(readdirSync(dir).sort()).toEqual(["agetty-ttyS0", "banger-agent", "banger-net", "banger-sshd", "opencode"]);
    for (const s of readdirSync(dir)) expect(readlinkSync(join(dir, s))).toBe(`/etc/sv/${s}`);
  });

  it("writes executable run scripts that parse and wait for the network", () => {
    for (const s of ["banger-agent", "banger-net", "banger-sshd", "opencode"]) {
      const run = join(root, "etc/sv", s, "run");
      expect(statSync(run).mode & 0o777).toBe(0o755);
      expect(spawnSync("sh", ["-n", run]).status).toBe(0);
    }
    expect(readFileSync(join(root, "etc/sv/banger-net/run"), "utf8")).toMatch(/\/usr\/local\/sbin\/banger-net \|\| exit 1\nexec pause/);
    // runsv restarts the agent whenever it exits; it waits for nothing.
    expect(readFileSync(join(root, "etc/sv/banger-agent/run"), "utf8")).toMatch(/^exec \/usr\/local\/sbin\/banger-agent 2>&1$/m);
    expect(readFileSync(join(root, "etc/sv/banger-agent/run"), "utf8")).not.toMatch(/sv check/);
    expect(readFileSync(join(root, "etc/sv/banger-sshd/run"), "utf8")).toMatch(/^sv check banger-net/m);
    expect(readFileSync(join(root, "etc/sv/opencode/run"), "utf8")).toMatch(/mountpoint -q \/root \|\| exit 1[\s\S]*serve --port 4096 --hostname 0\.0\.0\.0/);
  });

  it("installs the agent root-owned 0755 at /usr/local/sbin/banger-agent", () => {
    const st = statSync(join(root, "usr/local/sbin/banger-agent"));
    expect([st.mode & 0o777, st.uid, st.gid]).toEqual([0o755, 0, 0]);
    expect(readFileSync(join(root, "usr/local/sbin/banger-agent"), "utf8")).toBe("agent bytes\n");
  });

  it("sshd reads banger's policy first, ships no host key; /dev/vdb is /root", () => {
    expect(readFileSync(join(root, "etc/ssh/sshd_config"), "utf8").split("\n")[0]).toBe("Include /etc/ssh/sshd_config.d/*.conf");
    expect(readFileSync(join(root, "etc/ssh/sshd_config.d/banger.conf"), "utf8")).toMatch(/HostKey \/etc\/ssh\/ssh_host_ed25519_key/);
    expect(readdirSync(join(root, "etc/ssh")).filter((f) => f.startsWith("ssh_host_"))).toEqual([]);
    expect(readFileSync(join(root, "etc/fstab"), "utf8")).toMatch(/^\/dev\/vdb \/root ext4/m);
    // Running it twice does not stack Include lines.
    expect(sh(`configure_void_rootfs ${root} ${join(tmp, "opencode")} ${join(tmp, "banger-agent")}`).code).toBe(0);
    expect(readFileSync(join(root, "etc/ssh/sshd_config"), "utf8").match(/^Include/gm)).toHaveLength(1);
  });

  it("a missing stock service is an error naming it", () => {
    const bare = join(tmp, "bare");
    mkdirSync(join(bare, "etc/ssh"), { recursive: true });
    const r = sh(`write_void_services ${bare}; enable_void_services ${bare}`);
    expect(r.code).toBe(1);
    expect(r.out).toMatch(/runit service agetty-ttyS0 has no \/etc\/sv\/agetty-ttyS0/);
  });
});

describe("Void manifest", () => {
  const list =
    "ii openssh-9.8p1_1          Secure Shell\nii libstdc++-13.2.0_2  GNU C++\nii iproute2-6.10.0_1 x\nii e2fsprogs-1.47.1_1 x\nii ca-certificates-20240203+3.104_1 x\nii libgcc-13.2.0_2 x\nii xbps-0.59.2_6 x\n";

  it("pins the rootfs tarball by URL and sha256", () => {
    expect(VOID.rootfs.url).toMatch(/^https:\/\/repo-default\.voidlinux\.org\/live\/current\/void-x86_64-musl-ROOTFS-\d{8}\.tar\.xz$/);
    expect(VOID.rootfs.sha256).toMatch(/^[0-9a-f]{64}$/);
  });

  it("parses xbps-query -l into name/version", () => {
    expect(parseXbpsList(list).slice(0, 3)).toEqual([
      { name: "ca-certificates", version: "20240203+3.104_1" },
      { name: "e2fsprogs", version: "1.47.1_1" },
      { name: "iproute2", version: "6.10.0_1" },
    ]);
    expect(parseXbpsList(list).find((p) => p.name === "libstdc++")).toEqual({ name: "libstdc++", version: "13.2.0_2" });
  });

  it("writes services, files and packages, and refuses a rootfs without the pinned packages", () => {
    const m = voidManifest(VOID, {
      name: "void-1",
      kernelRelease: "6.1.0-56-cloud-amd64",
      kernelSource: "kernel-from debian",
      xbpsList: list,
      files: [],
      builtAt: "t",
    });
    expect(m).toMatchObject({
      name: "void-1",
      os: "void",
      rootfs: VOID.rootfs,
      services: [
        { name: "ssh", port: 22 },
        { name: "opencode", port: 4096, timeoutS: 300 },
      ],
    });
    expect(() => voidManifest(VOID, { name: "v", kernelRelease: "k", kernelSource: "s", xbpsList: "ii xbps-0.59.2_6 x\n", files: [] })).toThrow(
      /lacks pinned packages: openssh, iproute2/,
    );
  });
});
