import type { VmmKind } from "../domain/types.js";

/** What the host checks read of the config; the CLI builds it too, to run them when bangerd is down. */
export interface HostCheckConfig {
  vmm: VmmKind;
  stateDir: string;
  /** ssh_key from the config; unset means the auto-managed key at defaultSshKey. */
  sshKey?: string;
  defaultSshKey: string;
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
}
