import type { DeviceAccess, HostCheckConfig, HostFacts, PrivilegeFacts } from "../ports/host.js";
import type { Check } from "./checks.js";

const FIX = "restart bangerd as root with host_setup on (the default), or run `sudo banger doctor --fix`, then restart bangerd";

/**
 * Which least-privilege protections are active, each PASS or WARN with its fix. None is a FAIL:
 * banger works without them, it is just less contained (docs/security-host.md).
 */
export async function protectionChecks(c: HostCheckConfig, host: HostFacts): Promise<Check[]> {
  const p = await host.privilege();
  const checks: Check[] = [];
  if (!c.vmmUser) {
    checks.push({ name: "vmm-user", status: "WARN", detail: 'vmm_user = "": VMMs run as root', fix: 'set vmm_user = "banger-vmm" and ' + FIX });
  } else if (p.vmmUid === undefined) {
    checks.push({ name: "vmm-user", status: "WARN", detail: `user ${c.vmmUser} does not exist: VMMs run as root`, fix: FIX });
  } else if (!p.root) {
    checks.push({
      name: "vmm-user",
      status: "WARN",
      detail: `bangerd is not root: VMMs run as its own user, not ${c.vmmUser}`,
      fix: "run bangerd as root (its systemd unit)",
    });
  } else if (!p.setpriv) {
    checks.push({ name: "vmm-user", status: "WARN", detail: "setpriv not found: cannot drop to the VMM user", fix: "apt-get install util-linux" });
  } else {
    checks.push(
      p.stateBlocked
        ? {
            name: "vmm-user",
            status: "WARN",
            detail: `${c.vmmUser} (uid ${p.vmmUid}) cannot pass through ${p.stateBlocked} to ${c.stateDir}: VMMs run as root`,
            fix: `chmod o+x ${p.stateBlocked} (or move state_dir under traversable directories, e.g. /var/lib/banger), then restart bangerd`,
          }
        : { name: "vmm-user", status: "PASS", detail: `VMMs run as ${c.vmmUser} (uid ${p.vmmUid}), no capabilities, no_new_privs; VM dirs 0700 theirs` },
    );
    checks.push(deviceCheck("vmm-tun", "/dev/net/tun", c.vmmUser, p.tun, "attaching still needs the TAP's owner uid, so it reaches only its own"));
    checks.push(deviceCheck("vmm-kvm", "/dev/kvm", c.vmmUser, p.kvm, "KVM guests can start"));
  }
  checks.push(
    c.vmm === "qemu" && !p.qemuSandbox
      ? {
          name: "qemu-sandbox",
          status: "WARN",
          detail: "this qemu has no -sandbox (seccomp)",
          fix: "install a qemu built with libseccomp (Debian's qemu-system-x86 is)",
        }
      : {
          name: "qemu-sandbox",
          status: "PASS",
          detail: p.qemuSandbox
            ? "qemu runs with -sandbox on (seccomp, no spawn, no privilege changes)"
            : "not used (vmm is firecracker: its own seccomp filters)",
        },
  );
  if (c.vmm === "firecracker") checks.push(jailerCheck(c, p));
  if (p.apiGid === undefined) {
    checks.push({ name: "api-group", status: "WARN", detail: `group ${c.apiGroup} does not exist: only root can use bangerd's socket`, fix: FIX });
  } else if (p.socket && (p.socket.gid !== p.apiGid || (p.socket.mode & 0o007) !== 0)) {
    checks.push({
      name: "api-group",
      status: "WARN",
      detail: `socket is mode ${p.socket.mode.toString(8)} group ${p.socket.gid}, expected 660 group ${c.apiGroup} (${p.apiGid})`,
      fix: "restart bangerd as root",
    });
  } else {
    checks.push({ name: "api-group", status: "PASS", detail: `members of ${c.apiGroup} (gid ${p.apiGid}) may use the socket; everyone else is refused` });
  }
  return checks;
}

/** Read-write access for the VMM user by mode, group or ACL; never fixed by opening the node to everyone. */
function deviceCheck(name: string, dev: string, user: string, a: DeviceAccess, passNote: string): Check {
  if (!a.present) return { name, status: "PASS", detail: `no ${dev} on this host: nothing to grant` };
  if (a.ok) return { name, status: "PASS", detail: `${user} opens ${dev} read-write (${a.via}): ${passNote}` };
  return {
    name,
    status: "WARN",
    detail: `${user} cannot open ${dev} read-write: ${name === "vmm-kvm" ? "KVM guests cannot start (TCG still works)" : "its VMMs cannot open their TAP"}`,
    fix: `${FIX} (it grants access by an ACL entry; package acl), or by hand: setfacl -m u:${user}:rw ${dev}`,
  };
}

function jailerCheck(c: HostCheckConfig, p: PrivilegeFacts): Check {
  if (p.jailerProblem) return { name: "jailer", status: "WARN", detail: `${p.jailerProblem}: firecracker runs unjailed`, fix: "fix or unset jailer_bin" };
  if (!p.jailer) {
    return {
      name: "jailer",
      status: "WARN",
      detail: "no jailer found: firecracker runs without a chroot or a per-VM cgroup (its own seccomp filters still apply)",
      fix: "install `jailer` from the same Firecracker release beside firecracker, or set jailer_bin",
    };
  }
  if (!p.root || !c.vmmUser || p.vmmUid === undefined) {
    return {
      name: "jailer",
      status: "WARN",
      detail: `${p.jailer} is there but unused: the jailer needs bangerd as root and an existing vmm_user to drop to`,
      fix: `set vmm_user and ${FIX}`,
    };
  }
  return {
    name: "jailer",
    status: "PASS",
    detail: `${p.jailer}: each VM in its own chroot as ${c.vmmUser} (uid ${p.vmmUid}), in a cgroup with its vCPU (cpu.max) and memory (memory.max) limits`,
  };
}
