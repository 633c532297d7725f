import { execFileSync, spawnSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { existsSync, readFileSync } from "node:fs";

/** Why tests that create system accounts cannot run here, or undefined. */
export function systemUserSkipReason(): string | undefined {
  if (process.getuid?.() !== 0) return "needs root to create a system user";
  for (const tool of ["useradd", "userdel", "setpriv"]) {
    try {
      execFileSync("sh", ["-c", `command -v ${tool}`], { stdio: "ignore" });
    } catch {
      return `${tool} not installed`;
    }
  }
  return undefined;
}

export interface TestUser {
  name: string;
  uid: number;
  gid: number;
  remove(): void;
}

/** A throwaway system account (removed by `remove`), optionally in extra groups. */
export function createSystemUser(prefix: string, groups: string[] = []): TestUser {
  const name = `${prefix}-${randomBytes(3).toString("hex")}`;
  const existing = groups.filter((g) =>
    readFileSync("/etc/group", "utf8")
      .split("\n")
      .some((l) => l.startsWith(`${g}:`)),
  );
  execFileSync(
    "useradd",
    [
      "--system",
      "--user-group",
      "--create-home",
      "--home-dir",
      `/tmp/${name}-home`,
      "--shell",
      "/bin/sh",
      ...(existing.length ? ["--groups", existing.join(",")] : []),
      name,
    ],
    { timeout: 30_000 },
  );
  const row = readFileSync("/etc/passwd", "utf8")
    .split("\n")
    .find((l) => l.startsWith(`${name}:`))!
    .split(":");
  return {
    name,
    uid: Number(row[2]),
    gid: Number(row[3]),
    remove() {
      dropDeviceAcls(name);
      // A VMM of the test may still be exiting as this user, and userdel refuses a user with processes.
      for (let attempt = 0; ; attempt++) {
        try {
          execFileSync("userdel", ["--remove", name], { timeout: 30_000, stdio: "ignore" });
          break;
        } catch (e) {
          if (attempt >= 2) throw e;
          spawnSync("pkill", ["-KILL", "-u", name], { timeout: 10_000 });
          spawnSync("sleep", ["0.5"]);
        }
      }
      if (existsSync(`/tmp/${name}-home`)) execFileSync("rm", ["-rf", `/tmp/${name}-home`]);
    },
  };
}

/**
 * Removes the ACL entries bangerd's host setup may have given `user` on the VMM's devices, while
 * the name still resolves: a test that removes its account leaves no entry for a recycled uid.
 */
export function dropDeviceAcls(user: string): void {
  for (const dev of ["/dev/kvm", "/dev/net/tun"]) {
    try {
      execFileSync("setfacl", ["-x", `u:${user}`, dev], { timeout: 10_000, stdio: "ignore" });
    } catch {
      // no setfacl, no node, or no entry for this user
    }
  }
}

/** Real, effective, saved and fs ids, capabilities, no_new_privs and seccomp mode of a process. */
export function procStatus(pid: number): { uid: number[]; gid: number[]; capEff: string; noNewPrivs: string; seccomp: string } {
  const text = readFileSync(`/proc/${pid}/status`, "utf8");
  const field = (k: string) => new RegExp(`^${k}:\\s*(.*)$`, "m").exec(text)?.[1].trim() ?? "";
  return {
    uid: field("Uid").split(/\s+/).map(Number),
    gid: field("Gid").split(/\s+/).map(Number),
    capEff: field("CapEff"),
    noNewPrivs: field("NoNewPrivs"),
    seccomp: field("Seccomp"),
  };
}

/**
 * A command prefix that runs the rest in a private mount namespace whose /dev/net/tun is a 0666
 * node made in `dir` (Debian's udev default; this host's is 0600). The host's own node is untouched.
 */
export function openTunWrap(dir: string): string[] {
  const node = `${dir}/tun`;
  execFileSync("mknod", ["-m", "0666", node, "c", "10", "200"], { timeout: 10_000 });
  return ["unshare", "--mount", "--propagation", "private", "sh", "-c", `mount --bind ${node} /dev/net/tun && exec "$@"`, "sh"];
}
