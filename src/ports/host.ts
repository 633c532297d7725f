import type { VmmKind } from "../domain/types.js";

/** What the host checks read of the config; the CLI builds it too, to run them when bangerd is down. */
export interface HostCheckConfig {
  vmm: VmmKind;
  stateDir: string;
  /** ssh_key from the config; unset means the auto-managed key at defaultSshKey. */
  sshKey?: string;
  defaultSshKey: string;
  /** vmm_user from the config; empty means VMMs run as the daemon's user. */
  vmmUser: string;
  /** api_group from the config. */
  apiGroup: string;
}

/** What doctor reports about least privilege (src/app/protections.ts). */
export interface PrivilegeFacts {
  /** The daemon (or the CLI running doctor) is root: only then can it drop to vmm_user. */
  root: boolean;
  /** vmm_user's uid, undefined when the account does not exist. */
  vmmUid?: number;
  /** vmm_user is in group kvm (needed for /dev/kvm). */
  vmmInKvm: boolean;
  /** api_group's gid, undefined when the group does not exist. */
  apiGid?: number;
  /** Owner and mode of the API socket, when it exists. */
  socket?: { uid: number; gid: number; mode: number };
  /** qemu has -sandbox (seccomp). */
  qemuSandbox: boolean;
  /** setpriv (util-linux), which drops the privileges. */
  setpriv?: string;
  /** The jailer banger would use (jailer_bin, or `jailer` beside firecracker / on PATH). */
  jailer?: string;
  /** Why a configured jailer_bin cannot be used. */
  jailerProblem?: string;
  /** Whether the VMM user, with the credentials its VMMs get, opens /dev/net/tun read-write (it attaches to its own TAP). */
  tun: DeviceAccess;
  /** The same for /dev/kvm. */
  kvm: DeviceAccess;
  /** The first directory on the way to the state dir the VMM user cannot pass (VMMs then run as root). */
  stateBlocked?: string;
}

/** A device node as the VMM user meets it; only probed when root, the user exists and setpriv is there. */
export interface DeviceAccess {
  present: boolean;
  ok: boolean;
  /** What grants it: "mode 666", "group kvm", "an ACL entry", "its owner". */
  via?: string;
}

/** Facts about the host that doctor and the boot arguments need; the CLI also uses them when bangerd is down. */
export interface HostFacts {
  /** Version line of the VMM binary; throws with the reason when it cannot run. */
  vmmVersion(kind: "firecracker" | "qemu"): Promise<string>;
  /** Whether guests can run under KVM here, or fall back to TCG, and why. */
  accelVerdict(): Promise<{ accel: string; reason: string }>;
  /** Why the SSH key banger uses is unusable, or undefined. */
  sshKeyProblem(): Promise<string | undefined>;
  /** Nameservers a NAT guest should use: the host's own. */
  nameservers(): string[];
  /** Absolute path of a tool on PATH. */
  which(tool: string): string | undefined;
  /** Whether /dev/kvm opens read/write; the detail says why not. */
  kvm(): { ok: boolean; detail: string };
  /** Creates the directory when needed and checks it is writable; undefined when fine. */
  dirProblem(path: string): string | undefined;
  privilege(): Promise<PrivilegeFacts>;
  /** MemAvailable from /proc/meminfo in MiB; undefined when it cannot be read. The paused-VM pool keeps clear of it. */
  memAvailableMib(): number | undefined;
}
