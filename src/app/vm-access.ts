import { authOf } from "../domain/service-auth.js";
import type { Vm } from "../domain/types.js";
import type { AppConfig, AppDeps } from "./deps.js";
import { readSecret } from "./vm-secret.js";

export interface ServiceAccess {
  service: string;
  url: string;
  username?: string;
  /** Only when asked for (`vm show --show-secret`). */
  password?: string;
  /** False for a VM created before banger set passwords: its service is open. */
  protected: boolean;
}

type AccessDeps = Pick<AppDeps, "store" | "files"> & { config: Pick<AppConfig, "secretsDir"> };

/** How to reach a VM's guest services, with the password only when `reveal` is set. */
export async function serviceAccess(d: AccessDeps, vm: Vm, reveal: boolean): Promise<ServiceAccess[]> {
  const image = d.store.getImageById(vm.imageId);
  const secret = await readSecret(d, vm);
  return (image?.guest.services ?? [])
    .filter((s) => s.port !== 22)
    .map((s) => {
      const auth = authOf(s.name);
      const url = `http://${vm.ip ?? "?"}:${s.port}/`;
      if (!auth || !secret) return { service: s.name, url, protected: false };
      return { service: s.name, url, username: auth.username, protected: true, ...(reveal ? { password: secret } : {}) };
    });
}
