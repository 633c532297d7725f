import { spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { BangerError } from "../../domain/errors.js";

const TIMEOUT_MS = 30_000;

function exists(file: "/etc/passwd" | "/etc/group", name: string): boolean {
  try {
    return readFileSync(file, "utf8")
      .split("\n")
      .some((l) => l.startsWith(`${name}:`));
  } catch {
    return false;
  }
}

function run(cmd: string, args: string[]): void {
  const r = spawnSync(cmd, args, { encoding: "utf8", timeout: TIMEOUT_MS });
  if (r.status !== 0) {
    throw new BangerError("COMMAND_FAILED", `${cmd} ${args.join(" ")} failed: ${(r.stderr || r.error?.message || `exit ${r.status}`).trim()}`, {
      hint: "run it by hand as root, or create the account with your configuration management",
    });
  }
}

/**
 * `doctor --fix`: the accounts least privilege needs. The API group (socket access) and the
 * unprivileged VMM user: a system account without a home or shell, in group kvm for /dev/kvm.
 * Returns what it did; running it again does nothing.
 */
export function fixHost(opts: { vmmUser: string; apiGroup: string }): string[] {
  if (process.getuid?.() !== 0) {
    throw new BangerError("BAD_REQUEST", "doctor --fix creates system accounts and must run as root", { hint: "sudo banger doctor --fix" });
  }
  const done: string[] = [];
  if (!exists("/etc/group", opts.apiGroup)) {
    run("groupadd", ["--system", opts.apiGroup]);
    done.push(`created group ${opts.apiGroup} (add users with \`usermod -aG ${opts.apiGroup} <user>\`; they log in again to use it)`);
  }
  if (opts.vmmUser && !exists("/etc/passwd", opts.vmmUser)) {
    run("useradd", ["--system", "--user-group", "--no-create-home", "--home-dir", "/nonexistent", "--shell", "/usr/sbin/nologin", opts.vmmUser]);
    done.push(`created system user ${opts.vmmUser}`);
  }
  if (opts.vmmUser && exists("/etc/group", "kvm")) {
    const members = readFileSync("/etc/group", "utf8")
      .split("\n")
      .find((l) => l.startsWith("kvm:"))
      ?.split(":")[3]
      ?.split(",");
    if (!members?.includes(opts.vmmUser)) {
      run("usermod", ["-aG", "kvm", opts.vmmUser]);
      done.push(`added ${opts.vmmUser} to group kvm`);
    }
  }
  return done;
}
