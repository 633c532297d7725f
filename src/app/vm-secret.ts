import { randomBytes } from "node:crypto";
import { join } from "node:path";
import { SERVICE_AUTH } from "../domain/service-auth.js";
import type { Vm } from "../domain/types.js";
import type { InjectedFile } from "../ports/disks.js";
import type { AppConfig, AppDeps } from "./deps.js";

type SecretDeps = Pick<AppDeps, "files"> & { config: Pick<AppConfig, "secretsDir"> };

/**
 * One random password per VM for its protected guest services (opencode). It is made at create,
 * never shared by two VMs (warm pool sets carry none; it is written at claim), and lives in two
 * places only: root-only in the guest (`/etc/banger/*.env`, 0600) and root-only on the host
 * (`state_dir/secrets/<vm id>`, 0600 in a 0700 directory). The API hands it out on request.
 */
export function newSecret(): string {
  // 192 bits, URL- and env-file-safe.
  return randomBytes(24).toString("base64url");
}

export const secretPath = (d: SecretDeps, vm: Pick<Vm, "id">): string => join(d.config.secretsDir, vm.id);

/** The guest's env files, one per protected service. */
export function guestSecretFiles(secret: string): InjectedFile[] {
  const byFile = new Map<string, string[]>();
  for (const a of Object.values(SERVICE_AUTH)) byFile.set(a.guestEnvFile, [...(byFile.get(a.guestEnvFile) ?? []), `${a.envVar}=${secret}`]);
  return [...byFile].map(([path, lines]) => ({ path, content: `${lines.join("\n")}\n`, mode: 0o600 }));
}

export async function storeSecret(d: SecretDeps, vm: Pick<Vm, "id">, secret: string): Promise<void> {
  await d.files.writeText(secretPath(d, vm), `${secret}\n`, 0o600);
}

/** Undefined for a VM made before banger set passwords (its services run without one). */
export async function readSecret(d: SecretDeps, vm: Pick<Vm, "id">): Promise<string | undefined> {
  if (!(await d.files.stat(secretPath(d, vm)))) return undefined;
  return (await d.files.readText(secretPath(d, vm))).trim();
}

export async function removeSecret(d: SecretDeps, vm: Pick<Vm, "id">): Promise<void> {
  await d.files.remove(secretPath(d, vm));
}
