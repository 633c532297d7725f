import { execFileSync } from "node:child_process";
import { chmodSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { BANGER, built, runIn, startTestDaemon, type CliResult, type TestDaemon } from "../helpers/daemon.js";
import { builtDebianImage, guestSkipReason, registerArgs } from "../helpers/guest-image.js";
import { createNetns, type Netns } from "../helpers/netns.js";
import { createSystemUser, openTunWrap, procStatus, systemUserSkipReason, type TestUser } from "../helpers/system-user.js";

const skip = built() ?? guestSkipReason() ?? systemUserSkipReason();

interface VmJson {
  vm: { name: string; ip: string; pid: number; ownerName?: string; ownerUid?: number };
  events: { stage: string; detail?: string }[];
}

/**
 * One real Debian guest for the privilege and access rules of issue 11: a non-root member of the
 * API group creates it and ssh-es in with its own key, its QEMU runs as the unprivileged VMM user
 * under seccomp, opencode demands the VM's password, and a user outside the group is refused.
 */
describe.skipIf(skip)(`e2e: group access, an unprivileged VMM and opencode's password${skip ? ` (skipped: ${skip})` : ""}`, () => {
  let ns: Netns;
  let d: TestDaemon;
  let group: string;
  let member: TestUser, outsider: TestUser, vmmUser: TestUser;
  let vm: VmJson["vm"];

  /** The real CLI as another user (setpriv with that user's groups), inside the daemon's namespace. */
  const as = (u: TestUser, args: string[], timeoutMs = 120_000): Promise<CliResult> =>
    runIn(ns, "setpriv", [`--reuid=${u.uid}`, `--regid=${u.gid}`, "--init-groups", "--", BANGER, ...args], {
      timeoutMs,
      env: { HOME: `/tmp/${u.name}-home`, XDG_DATA_HOME: `/tmp/${u.name}-home/.local/share`, BANGER_CONFIG: d.configPath },
    });

  beforeAll(async () => {
    group = `bgr-api-${process.pid % 100000}`;
    execFileSync("groupadd", ["--system", group], { timeout: 30_000 });
    member = createSystemUser("bgr-u", [group]);
    outsider = createSystemUser("bgr-x");
    vmmUser = createSystemUser("bgr-vmm", ["kvm"]);
    ns = await createNetns("access");
    const dir = (await import("node:fs")).mkdtempSync("/tmp/banger-acc-");
    // Like /var/lib/banger and /run/banger: others may pass through to what is theirs.
    chmodSync(dir, 0o711);
    d = await startTestDaemon({
      ns,
      dir,
      wrap: openTunWrap(dir),
      config: { memory_mib: 1024, work_disk_gib: 4, vmm_user: vmmUser.name, api_group: group, ssh_timeout_s: 360, service_timeout_s: 400 },
    });
    const reg = await d.cli(registerArgs(builtDebianImage()!, "debian-acc-1"), { timeoutMs: 300_000 });
    expect(reg.stderr).toBe("");
    expect((await d.cli(["image", "promote", "debian-acc-1", "--as", "debian"])).code).toBe(0);
  });

  afterAll(async () => {
    await d?.destroy();
    await ns?.destroy();
    for (const u of [member, outsider, vmmUser]) u?.remove();
    if (group) execFileSync("groupdel", [group], { timeout: 30_000 });
  });

  it("the socket is 0660 root:<api_group>, and a user outside the group is refused with the fix", async () => {
    const st = (await import("node:fs")).statSync(d.socket);
    expect(st.mode & 0o777).toBe(0o660);
    expect(st.uid).toBe(0);
    const r = await as(outsider, ["vm", "ls"]);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/permission denied on bangerd's socket/);
    expect(r.stderr).toMatch(/usermod -aG banger/);
  });

  it("even through a socket left open, the daemon itself refuses outsiders (peer credentials)", async () => {
    chmodSync(d.socket, 0o666);
    try {
      const r = await as(outsider, ["vm", "ls"]);
      expect(r.code).not.toBe(0);
      expect(r.stderr).toMatch(new RegExp(`user ${outsider.name} \\(uid ${outsider.uid}\\) is not in group ${group}`));
    } finally {
      chmodSync(d.socket, 0o660);
    }
  });

  it("a member may not change images", async () => {
    const img = builtDebianImage()!;
    const r = await as(member, registerArgs(img, "debian-acc-2"));
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/only root may change images/);
  });

  it("a member creates a VM without sudo; it is recorded as theirs and opencode's password was checked", async () => {
    const r = await as(member, ["--json", "vm", "create", "--image", "debian", "--name", "grp"], 600_000);
    if (r.code !== 0) console.error(r.stdout, r.stderr);
    expect(r.code).toBe(0);
    const out = r.json<VmJson>();
    vm = out.vm;
    expect(vm).toMatchObject({ ownerName: member.name, ownerUid: member.uid });
    expect(out.events.find((e) => e.stage === "wait-services")?.detail).toMatch(/^opencode:4096 \(password checked\)(; pushed by banger-agent in \d+ ms)?$/);
  });

  it("the member ssh-es in with their own key; banger's key stays root's", async () => {
    const r = await as(member, ["vm", "ssh", "grp", "--", "true"]);
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    const keys = await as(member, ["vm", "ssh", "grp", "--", "cat /etc/ssh/banger/authorized_keys"]);
    const own = readFileSync(`/tmp/${member.name}-home/.local/share/banger/ssh/id_ed25519.pub`, "utf8").trim();
    expect(keys.stdout.trim().split("\n")).toHaveLength(2);
    expect(keys.stdout).toContain(own);
    // The daemon's private key is not readable by the member.
    const daemonKey = join(d.dir, "data", "banger", "ssh", "id_ed25519");
    const peek = await runIn(ns, "setpriv", [`--reuid=${member.uid}`, `--regid=${member.gid}`, "--init-groups", "--", "cat", daemonKey]);
    expect(peek.code).not.toBe(0);
  });

  it("lists: everyone's by default with the owner, --mine only one's own", async () => {
    const all = await as(member, ["vm", "ls"]);
    expect(all.stdout).toMatch(new RegExp(`^grp\\s+${member.name}\\s+running`, "m"));
    expect((await as(member, ["--json", "vm", "ls", "--mine"])).json<{ vms: { name: string }[] }>().vms.map((v) => v.name)).toEqual(["grp"]);
    expect((await d.cli(["--json", "vm", "ls", "--mine"])).json<{ vms: unknown[] }>().vms).toEqual([]);
  });

  it("its QEMU runs as the VMM user: non-zero uid, no capabilities, seccomp", () => {
    const st = procStatus(vm.pid);
    expect(st.uid).toEqual([vmmUser.uid, vmmUser.uid, vmmUser.uid, vmmUser.uid]);
    expect(vmmUser.uid).toBeGreaterThan(0);
    expect(st.capEff).toBe("0000000000000000");
    expect(st.noNewPrivs).toBe("1");
    expect(st.seccomp).toBe("2");
  });

  it("opencode answers 401 without the password and 200 with the one vm show --show-secret prints", async () => {
    const url = `http://${vm.ip}:4096/config`;
    const code = async (extra: string[]) =>
      (await runIn(ns, "curl", ["-s", "-o", "/dev/null", "-w", "%{http_code}", "--max-time", "20", ...extra, url])).stdout;
    expect(await code([])).toBe("401");
    const hidden = await as(member, ["vm", "show", "grp"]);
    expect(hidden.stdout).toMatch(/opencode\s+http:\/\/\S+:4096\/\s+user opencode, password: `banger vm show grp --show-secret`/);
    const shown = await as(member, ["--json", "vm", "show", "grp", "--show-secret"]);
    const svc = shown.json<{ services: { service: string; username: string; password: string }[] }>().services[0];
    expect(svc).toMatchObject({ service: "opencode", username: "opencode", password: expect.stringMatching(/^[A-Za-z0-9_-]{32}$/) });
    expect(await code(["-u", `opencode:${svc.password}`])).toBe("200");
    expect(await code(["-u", "opencode:wrong"])).toBe("401");
    // In the guest the password file is root's alone.
    const st = await as(member, ["vm", "ssh", "grp", "--", "stat -c '%a %U' /etc/banger/opencode.env"]);
    expect(st.stdout.trim()).toBe("600 root");
  });

  it("an outsider cannot read the password; the owner removes the VM", async () => {
    chmodSync(d.socket, 0o666);
    try {
      expect((await as(outsider, ["vm", "show", "grp", "--show-secret"])).code).not.toBe(0);
    } finally {
      chmodSync(d.socket, 0o660);
    }
    const rm = await as(member, ["vm", "rm", "grp", "--force"], 120_000);
    expect(rm.stderr).toBe("");
    expect(rm.code).toBe(0);
  });
});
