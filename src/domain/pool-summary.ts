/** The paused-VM pool as `GET /v1/host` reports it (`pool.vms`). */
export interface PausedPoolView {
  size: number;
  members: Record<string, number>;
  memoryMib: number;
  maxMemoryMib: number;
  filling?: string;
}

/** The paused-VM pool in one line (`banger host`, the web UI's Host page): members per image, the memory they hold, the cap. */
export function pausedPoolLine(p: PausedPoolView | undefined): string {
  if (!p) return "unknown";
  if (p.size === 0) return "off (vm_pool_size = 0)";
  const members =
    Object.entries(p.members)
      .map(([k, n]) => `${k} ${n}`)
      .join(", ") || "no members";
  return `${members} of ${p.size} per image; ${p.memoryMib} MiB${p.maxMemoryMib ? ` of ${p.maxMemoryMib} MiB` : " (no cap)"}${p.filling ? `; restoring ${p.filling}` : ""}`;
}
