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
  tunOpen: true,
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
    expect((await byName(cfg, { tunOpen: false }))["vmm-tun"]).toMatchObject({ status: "WARN", fix: expect.stringMatching(/chmod 0666 \/dev\/net\/tun/) });
    expect((await byName(cfg, { vmmInKvm: false }))["vmm-kvm"]).toMatchObject({ status: "WARN", fix: "usermod -aG kvm banger-vmm" });
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
