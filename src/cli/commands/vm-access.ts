/** The shape of GET /v1/vms/:name/access (src/app/vm-access.ts). */
export interface ServiceAccess {
  service: string;
  url: string;
  username?: string;
  password?: string;
  protected: boolean;
}

/** `vm show`'s service block: the URL always, the password only when it was asked for. */
export function renderAccess(vmName: string, services: ServiceAccess[]): string {
  if (services.length === 0) return "";
  const lines = services.map((s) => {
    if (!s.protected) return `  ${s.service.padEnd(10)} ${s.url}  (no password: the VM predates service passwords)`;
    if (s.password === undefined) return `  ${s.service.padEnd(10)} ${s.url}  user ${s.username}, password: \`banger vm show ${vmName} --show-secret\``;
    return `  ${s.service.padEnd(10)} ${s.url}  user ${s.username}, password ${s.password}\n  ${"".padEnd(10)} curl -u ${s.username}:${s.password} ${s.url}config`;
  });
  return `\n\nservices\n${lines.join("\n")}`;
}
