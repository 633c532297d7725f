import type { AppConfig, AppDeps } from "./deps.js";

/**
 * Rotates every VM's console log that has grown past console_log_max_mib. The VMM keeps writing
 * whatever the daemon does, so this has to run again and again (the daemon's periodic loop);
 * stopped VMs are included because a log can have grown before they stopped.
 * Returns the names of the VMs whose log was rotated.
 */
export async function rotateConsoles(d: Pick<AppDeps, "store" | "console" | "log"> & { config: Pick<AppConfig, "consoleLogMaxBytes"> }): Promise<string[]> {
  const maxBytes = d.config.consoleLogMaxBytes;
  const rotated: string[] = [];
  for (const vm of d.store.listVms()) {
    // A VM being deleted is losing its dir; one being created has written next to nothing.
    if (vm.state === "deleting" || vm.state === "creating") continue;
    try {
      if (await d.console.rotate(vm.dir, maxBytes)) rotated.push(vm.name);
    } catch (e) {
      d.log.warn({ vm: vm.name, err: (e as Error).message }, "console log rotation failed");
    }
  }
  if (rotated.length > 0) d.log.info({ vms: rotated, maxBytes }, "console logs rotated");
  return rotated;
}
