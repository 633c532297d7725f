import { readFileSync } from "node:fs";
import { chmod, chown, open } from "node:fs/promises";
import { BangerError } from "../../domain/errors.js";

/** The unprivileged account a VMM runs as (config `vmm_user`), with the groups it needs (kvm). */
export interface VmmUser {
  name: string;
  uid: number;
  gid: number;
  /** Supplementary groups: kvm, when the host has it, for /dev/kvm. */
  groups: number[];
}

/** The rows of an /etc/passwd-style file (fields split on `:`), or none when it cannot be read. */
export function dbLines(path: string): string[][] {
  try {
    return readFileSync(path, "utf8")
      .split("\n")
      .filter((l) => l && !l.startsWith("#"))
      .map((l) => l.split(":"));
  } catch {
    return [];
  }
}

/** A group's gid from /etc/group, or undefined. */
export function groupGid(name: string, groupFile = "/etc/group"): number | undefined {
  const row = dbLines(groupFile).find((f) => f[0] === name);
  return row ? Number(row[2]) : undefined;
}

/** The account from /etc/passwd (plus group kvm), or undefined when there is no such user. Root is refused: it would drop nothing. */
export function lookupVmmUser(name: string, files = { passwd: "/etc/passwd", group: "/etc/group" }): VmmUser | undefined {
  const row = dbLines(files.passwd).find((f) => f[0] === name);
  if (!row) return undefined;
  const uid = Number(row[2]);
  const gid = Number(row[3]);
  if (uid === 0) {
    throw new BangerError("INVALID_CONFIG", `vmm_user ${name} is root (uid 0)`, {
      hint: 'name an unprivileged system user, e.g. banger-vmm (`banger doctor --fix` creates it), or "" to disable',
    });
  }
  const kvm = groupGid("kvm", files.group);
  return { name, uid, gid, groups: kvm === undefined ? [] : [kvm] };
}

/**
 * The argv prefix that runs the VMM as `u`: setpriv (util-linux) changes uid, gid and groups, empties
 * every capability set and sets no_new_privs, then execs. It goes after any `ip netns exec` wrap,
 * which needs root for its own setns.
 */
export function dropPrivilegesArgv(u: VmmUser): string[] {
  return [
    "setpriv",
    `--reuid=${u.uid}`,
    `--regid=${u.gid}`,
    ...(u.groups.length ? [`--groups=${u.groups.join(",")}`] : ["--clear-groups"]),
    "--inh-caps=-all",
    "--bounding-set=-all",
    "--no-new-privs",
    "--",
  ];
}

/**
 * Hands a VM directory to the VMM user: the directory (0700) and the files the VMM opens
 * read-write. Everything else in it (known_hosts) stays root's; secrets are not kept there at all.
 */
export async function giveToVmmUser(u: VmmUser, dir: string, files: string[], createFiles: string[] = []): Promise<void> {
  await chown(dir, u.uid, u.gid);
  await chmod(dir, 0o700);
  for (const f of createFiles) await (await open(f, "a", 0o600)).close();
  for (const f of [...files, ...createFiles]) {
    await chown(f, u.uid, u.gid);
    await chmod(f, 0o600);
  }
}
