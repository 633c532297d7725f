import type { Logger } from "pino";
import type { HostSetup, HostSetupResult } from "../ports/host-setup.js";

/** The slice of the config bangerd's start-up host setup reads. */
export interface HostPrepareConfig {
  /** host_setup: false leaves accounts and device access to the operator (configuration management). */
  enabled: boolean;
  /** bangerd runs as root: nothing else may create accounts or change device ACLs. */
  root: boolean;
  vmmUser: string;
  apiGroup: string;
  devices: string[];
  stateDir: string;
}

const FIX_ROOT = "run bangerd as root (its systemd unit), or `sudo banger doctor --fix` once";

/**
 * Secure by default: at every start, as root, bangerd creates what least privilege needs (the VMM
 * user, the API group, device access, a reachable state dir). Each line is logged once per start;
 * what it cannot do is a warning with its fix, never a failed start: doctor keeps its WARN.
 * Returns the result, or undefined when it did not run.
 */
export async function prepareHost(setup: HostSetup, c: HostPrepareConfig, log: Logger): Promise<HostSetupResult | undefined> {
  const l = log.child({ stage: "host-setup" });
  if (!c.enabled) {
    l.info("host_setup = false: accounts and device access are left to the operator (`banger doctor` shows what is missing)");
    return undefined;
  }
  if (!c.root) {
    l.warn({ fix: FIX_ROOT }, `bangerd is not root: it cannot create ${c.vmmUser ? `vmm_user ${c.vmmUser} or ` : ""}api_group ${c.apiGroup}`);
    return undefined;
  }
  let result: HostSetupResult;
  try {
    result = await setup.ensure({ vmmUser: c.vmmUser, apiGroup: c.apiGroup, devices: c.devices, stateDir: c.stateDir });
  } catch (e) {
    l.warn({ err: (e as Error).message, fix: "`sudo banger doctor --fix` shows the failing step" }, "host setup failed");
    return undefined;
  }
  for (const line of result.done) l.info(line);
  for (const p of result.problems) l.warn({ fix: p.fix }, p.detail);
  return result;
}
