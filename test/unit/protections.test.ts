import { describe, expect, it } from "vitest";
import { protectionChecks } from "../../src/app/protections.js";
import type { HostCheckConfig, HostFacts, PrivilegeFacts } from "../../src/ports/host.js";

const cfg: HostCheckConfig = { vmm: "qemu", stateDir: "/var/lib/banger", defaultSshKey: "/k", vmmUser: "banger-vmm", apiGroup: "banger" };
const all: PrivilegeFacts = {
  root: true,
  vmmUid: 990,
  vmmInKvm: true,
  apiGid: 991,
  socket: { uid: 0, gid: 991, mode: 0o660 },
  qemuSandbox: true,
  setpriv: "/usr/bin/setpriv",
  tun: { present: true, ok: true, via: "mode 666" },
  kvm: { present: true, ok: true, via: "group kvm" },
};
const host = (p: Partial<PrivilegeFacts>) => ({ privilege: async () => ({ ...all, ...p }) }) as unknown as HostFacts;
const byName = async (c: HostCheckConfig, p: Partial<PrivilegeFacts>) => Object.fromEntries((await protectionChecks(c, host(p))).map((x) => [x.name, x]));

describe("doctor's protection checks", () => {
  it("PASS when every protection is active", async () => {
    const checks = await byName(cfg, {});
    expect(Object.keys(checks)).toEqual(["vmm-user", "vmm-tun", "vmm-kvm", "qemu-sandbox", "api-group"]);
    for (const c of Object.values(checks)) expect(c.status, c.name).toBe("PASS");
  });

  it("WARN with the fix for each missing one, never FAIL", async () => {
    const missingUser = await byName(cfg, { vmmUid: undefined });
    expect(missingUser["vmm-user"]).toMatchObject({
      status: "WARN",
      detail: expect.stringMatching(/does not exist: VMMs run as root/),
      fix: expect.stringMatching(/doctor --fix/),
    });
    expect((await byName({ ...cfg, vmmUser: "" }, {}))["vmm-user"]).toMatchObject({ status: "WARN", detail: expect.stringMatching(/run as root/) });
    const noTun = (await byName(cfg, { tun: { present: true, ok: false } }))["vmm-tun"];
    expect(noTun).toMatchObject({ status: "WARN", fix: expect.stringMatching(/setfacl -m u:banger-vmm:rw \/dev\/net\/tun/) });
    // Never the world-writable fix.
    expect(noTun.fix).not.toMatch(/chmod|0666/);
    expect((await byName(cfg, { kvm: { present: true, ok: false } }))["vmm-kvm"]).toMatchObject({
      status: "WARN",
      detail: expect.stringMatching(/cannot open \/dev\/kvm.*TCG still works/),
      fix: expect.stringMatching(/setfacl -m u:banger-vmm:rw \/dev\/kvm/),
    });
    expect((await byName(cfg, { stateBlocked: "/root" }))["vmm-user"]).toMatchObject({
      status: "WARN",
      detail: expect.stringMatching(/cannot pass through \/root to \/var\/lib\/banger: VMMs run as root/),
      fix: expect.stringMatching(/^chmod o\+x \/root/),
    });
    expect((await byName(cfg, { qemuSandbox: false }))["qemu-sandbox"]).toMatchObject({ status: "WARN" });
    expect((await byName(cfg, { apiGid: undefined }))["api-group"]).toMatchObject({ status: "WARN", detail: expect.stringMatching(/only root/) });
    expect((await byName(cfg, { socket: { uid: 0, gid: 0, mode: 0o666 } }))["api-group"]).toMatchObject({
      status: "WARN",
      detail: expect.stringMatching(/mode 666/),
    });
    expect((await byName({ ...cfg, vmm: "firecracker" }, {})).jailer).toMatchObject({ status: "WARN" });
    const everything = await protectionChecks(cfg, host({ vmmUid: undefined, apiGid: undefined, qemuSandbox: false }));
    expect(everything.every((c) => c.status !== "FAIL")).toBe(true);
  });

  it("device access by mode, group or ACL all PASS, saying which; an absent node has nothing to grant", async () => {
    for (const via of ["mode 666", "group kvm", "an ACL entry"]) {
      const checks = await byName(cfg, { tun: { present: true, ok: true, via }, kvm: { present: true, ok: true, via } });
      for (const n of ["vmm-tun", "vmm-kvm"]) expect(checks[n]).toMatchObject({ status: "PASS", detail: expect.stringContaining(`(${via})`) });
    }
    expect((await byName(cfg, { kvm: { present: false, ok: false } }))["vmm-kvm"]).toMatchObject({
      status: "PASS",
      detail: expect.stringMatching(/no \/dev\/kvm/),
    });
  });

  it("jailer: PASS when found and usable, WARN with the reason otherwise", async () => {
    const fc = { ...cfg, vmm: "firecracker" as const };
    expect((await byName(fc, { jailer: "/usr/local/bin/jailer" })).jailer).toMatchObject({
      status: "PASS",
      detail: expect.stringMatching(/^\/usr\/local\/bin\/jailer: .*chroot as banger-vmm \(uid 990\).*cpu\.max.*memory\.max/),
    });
    expect((await byName(fc, {})).jailer).toMatchObject({
      status: "WARN",
      detail: expect.stringMatching(/no jailer found/),
      fix: expect.stringMatching(/jailer_bin/),
    });
    expect((await byName(fc, { jailer: "/j", root: false })).jailer).toMatchObject({ status: "WARN", detail: expect.stringMatching(/unused.*root/) });
    expect((await byName({ ...fc, vmmUser: "" }, { jailer: "/j" })).jailer).toMatchObject({ status: "WARN", detail: expect.stringMatching(/vmm_user/) });
    expect((await byName(fc, { jailerProblem: "jailer_bin /nope does not exist" })).jailer).toMatchObject({
      status: "WARN",
      detail: expect.stringMatching(/\/nope does not exist: firecracker runs unjailed/),
    });
    // qemu hosts get no jailer line at all.
    expect((await byName(cfg, { jailer: "/j" })).jailer).toBeUndefined();
  });
});
