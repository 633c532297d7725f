/** What bangerd (at start, as root) and `banger doctor --fix` set up so the protections can apply. */
export interface HostSetupRequest {
  /** vmm_user; empty means VMMs run as the daemon's user: no account, no device grants. */
  vmmUser: string;
  /** api_group. */
  apiGroup: string;
  /** Device nodes the VMM user must open read-write (/dev/kvm, /dev/net/tun); absent ones are skipped. */
  devices: string[];
  /** bangerd's state dir: its own, so it is made traversable; its parents are only checked. */
  stateDir: string;
}

/** Something the setup could not do, with what the operator can do instead. */
export interface HostSetupProblem {
  detail: string;
  fix: string;
}

export interface HostSetupResult {
  /** What changed, one line each; empty when everything was already in place. */
  done: string[];
  problems: HostSetupProblem[];
  /** The first directory on the way to the state dir that the VMM user cannot pass, when there is one. */
  blocked?: string;
}

/** Creates the accounts and grants device access; idempotent: a second run changes nothing. */
export interface HostSetup {
  ensure(req: HostSetupRequest): Promise<HostSetupResult>;
}
