import { chmod, stat } from "node:fs/promises";
import { dirname } from "node:path";
import type { HostSetup, HostSetupProblem, HostSetupRequest, HostSetupResult } from "../../ports/host-setup.js";
import type { Runner } from "../../ports/runner.js";
import { dbLines, dropPrivilegesArgv, groupGid, lookupVmmUser, type VmmUser } from "../exec/privilege.js";

/** useradd and friends can wait on a lock held by another account tool; none of them takes longer than this. */
const ACCOUNT_TIMEOUT_MS = 30_000;
/** One `test` run as the VMM user. */
const PROBE_TIMEOUT_MS = 10_000;

export interface AccountFiles {
  passwd: string;
  group: string;
}

/** The device nodes a VMM opens itself: the VMM user needs them read-write. */
export const VMM_DEVICES = ["/dev/kvm", "/dev/net/tun"];

const SYSTEM_FILES: AccountFiles = { passwd: "/etc/passwd", group: "/etc/group" };

/** Why a command could not run, in a word the operator can act on. */
function missingTool(e: unknown): boolean {
  return /ENOENT/.test((e as Error).message);
}

/** Whether the VMM user, with exactly the credentials its VMMs get (setpriv), passes `test <args>`. */
export async function vmmPasses(runner: Runner, user: VmmUser, test: string[]): Promise<boolean> {
  const [cmd, ...drop] = dropPrivilegesArgv(user);
  const r = await runner.run(cmd, [...drop, "test", ...test], { timeoutMs: PROBE_TIMEOUT_MS, allowFailure: true });
  return r.code === 0;
}

/** The first directory on the way to `dir` (itself included) the VMM user cannot pass, or undefined. */
export async function firstBlocked(runner: Runner, user: VmmUser, dir: string): Promise<string | undefined> {
  if (await vmmPasses(runner, user, ["-x", dir])) return undefined;
  const chain: string[] = [];
  for (let d = dir; ; d = dirname(d)) {
    chain.unshift(d);
    if (dirname(d) === d) break;
  }
  for (const d of chain) if (!(await vmmPasses(runner, user, ["-x", d]))) return d;
  return dir;
}

/**
 * The Linux side of least privilege, shared by bangerd's start and `doctor --fix`: the API group,
 * the VMM system user (in group kvm when the host has one), read-write access for that user to the
 * VMM's device nodes by group or a POSIX ACL entry (never by opening them to everyone), and a
 * state dir it can pass through. Accounts are looked up in the same files bangerd resolves
 * vmm_user from; every command runs through the runner with a timeout.
 */
export class LinuxHostSetup implements HostSetup {
  constructor(
    private readonly runner: Runner,
    private readonly files: AccountFiles = SYSTEM_FILES,
  ) {}

  async ensure(req: HostSetupRequest): Promise<HostSetupResult> {
    const done: string[] = [];
    const problems: HostSetupProblem[] = [];
    /** Runs one account command; `what` is [what it does, what it did]. */
    const step = async (what: [string, string], cmd: string, args: string[], fix: string): Promise<boolean> => {
      try {
        await this.runner.run(cmd, args, { timeoutMs: ACCOUNT_TIMEOUT_MS });
        done.push(what[1]);
        return true;
      } catch (e) {
        problems.push({ detail: `could not ${what[0]}: ${missingTool(e) ? `${cmd} is not installed` : (e as Error).message}`, fix });
        return false;
      }
    };

    if (groupGid(req.apiGroup, this.files.group) === undefined) {
      const ok = await step(
        [`create group ${req.apiGroup}`, `created group ${req.apiGroup} (add users with \`usermod -aG ${req.apiGroup} <user>\`; they log in again to use it)`],
        "groupadd",
        ["--system", req.apiGroup],
        `groupadd --system ${req.apiGroup} (package passwd), or create it with your configuration management`,
      );
      // Another bangerd (a second state dir) may have made it in the meantime: then nothing failed.
      if (!ok && groupGid(req.apiGroup, this.files.group) !== undefined) problems.pop();
    }
    if (!req.vmmUser) return { done, problems };

    let user = lookupVmmUser(req.vmmUser, this.files);
    if (!user) {
      const ok = await step(
        [`create system user ${req.vmmUser}`, `created system user ${req.vmmUser}`],
        "useradd",
        ["--system", "--user-group", "--no-create-home", "--home-dir", "/nonexistent", "--shell", "/usr/sbin/nologin", req.vmmUser],
        `useradd --system --user-group --no-create-home --shell /usr/sbin/nologin ${req.vmmUser}, or create it with your configuration management`,
      );
      user = lookupVmmUser(req.vmmUser, this.files);
      if (!user) return { done, problems };
      if (!ok) problems.pop(); // made concurrently by another bangerd
    }
    const kvm = dbLines(this.files.group).find((r) => r[0] === "kvm");
    if (kvm && !(kvm[3] ?? "").split(",").includes(user.name)) {
      await step([`add ${user.name} to group kvm`, `added ${user.name} to group kvm`], "usermod", ["-aG", "kvm", user.name], `usermod -aG kvm ${user.name}`);
    }

    for (const dev of req.devices) await this.grantDevice(user, dev, done, problems);

    // The state dir is bangerd's own: others may pass through it (what is inside keeps its own modes).
    // Not there yet (doctor --fix before the first start): bangerd makes it 0755.
    const mode = await stat(req.stateDir).then(
      (st) => st.mode & 0o7777,
      () => undefined,
    );
    if (mode === undefined) return { done, problems };
    if ((mode & 0o001) === 0) {
      await chmod(req.stateDir, mode | 0o001);
      done.push(`made ${req.stateDir} traversable (mode ${(mode | 0o001).toString(8)})`);
    }
    const blocked = await firstBlocked(this.runner, user, req.stateDir);
    if (blocked) {
      problems.push({
        detail: `${user.name} cannot pass through ${blocked} to reach the VM dirs under ${req.stateDir}: VMMs run as root`,
        fix: `chmod o+x ${blocked}, or set state_dir to a path under traversable directories (e.g. /var/lib/banger)`,
      });
    }
    return { done, problems, blocked };
  }

  private async grantDevice(user: VmmUser, dev: string, done: string[], problems: HostSetupProblem[]): Promise<void> {
    try {
      await stat(dev);
    } catch {
      return; // no such node on this host (no KVM): nothing to grant
    }
    if (await vmmPasses(this.runner, user, ["-r", dev, "-a", "-w", dev])) return;
    const fix = `apt-get install acl && setfacl -m u:${user.name}:rw ${dev}`;
    try {
      await this.runner.run("setfacl", ["-m", `u:${user.name}:rw`, dev], { timeoutMs: ACCOUNT_TIMEOUT_MS });
    } catch (e) {
      problems.push({ detail: `cannot grant ${user.name} read-write on ${dev}: ${missingTool(e) ? "setfacl is not installed" : (e as Error).message}`, fix });
      return;
    }
    if (await vmmPasses(this.runner, user, ["-r", dev, "-a", "-w", dev])) done.push(`granted ${user.name} read-write on ${dev} (ACL)`);
    else problems.push({ detail: `${user.name} still cannot open ${dev} after setfacl (a filesystem without ACLs?)`, fix });
  }
}
