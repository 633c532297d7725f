import { BangerError } from "./errors.js";
import type { Vm } from "./types.js";

/** Who sent an API request, from the socket's peer credentials. */
export interface Caller {
  uid: number;
  /** Primary and supplementary groups. */
  gids: number[];
  name: string;
  pid?: number;
}

export const ROOT_CALLER: Caller = { uid: 0, gids: [0], name: "root" };

export const isRoot = (c: Caller): boolean => c.uid === 0;

/**
 * The access rules. Members of the API group create VMs and list every VM; a VM's owner (its
 * creator) and root may stop, start, remove it, ssh into it, read its console and its service
 * password. Images and the daemon itself are root's.
 */
export function requireMember(c: Caller, apiGid: number | undefined, group: string): void {
  if (isRoot(c) || (apiGid !== undefined && c.gids.includes(apiGid))) return;
  throw new BangerError("FORBIDDEN", `user ${c.name} (uid ${c.uid}) is not in group ${group}, which may use bangerd`, {
    hint: `ask an administrator: sudo usermod -aG ${group} ${c.name} (then log in again)`,
  });
}

export function requireRoot(c: Caller, what: string): void {
  if (isRoot(c)) return;
  throw new BangerError("FORBIDDEN", `only root may ${what}`, { hint: "run it with sudo" });
}

export const ownsVm = (c: Caller, vm: Pick<Vm, "ownerUid">): boolean => isRoot(c) || (vm.ownerUid ?? 0) === c.uid;

export function requireOwner(c: Caller, vm: Pick<Vm, "name" | "ownerUid" | "ownerName">, what: string): void {
  if (ownsVm(c, vm)) return;
  throw new BangerError("FORBIDDEN", `VM ${vm.name} belongs to ${vm.ownerName ?? "root"}; only its owner or root may ${what} it`, {
    hint: "`banger vm ls --mine` lists your own VMs",
  });
}
