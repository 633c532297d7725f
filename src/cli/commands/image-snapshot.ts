import type { Command } from "commander";
import type { SnapshotSummary } from "../../app/image-snapshot.js";
import type { CliContext } from "../context.js";
import { bytes, keyValues, ms, table } from "../output.js";

// A golden boot under TCG on a loaded host takes minutes; the daemon's own op timeout bounds it.
const SNAPSHOT_MS = 30 * 60_000;

export function showSnapshot(s: SnapshotSummary | null | undefined, image: string): string {
  if (!s) return `snapshot: none (VMs boot cold; \`banger image snapshot ${image}\` takes one)`;
  return (
    keyValues([
      ["snapshot", s.id],
      ["  vmm", s.vmm],
      ["  shape", `${s.vcpus} vCPU / ${s.memoryMib} MiB / ${s.workDiskGib} GiB /root`],
      ["  size", bytes(s.bytes)],
      ["  taken", s.createdAt],
      ["  dir", s.dir],
    ]) +
    (s.stages.length
      ? `\n\n${table(
          ["SNAPSHOT STAGE", "TIME", "DETAIL"],
          s.stages.map((t) => [t.stage, ms(t.ms), t.detail?.split("\n")[0]]),
        )}`
      : "")
  );
}

export function registerImageSnapshot(im: Command, ctx: CliContext): void {
  im.command("snapshot <image>")
    .description("boot the image once, snapshot it, and create its VMs from that snapshot (replaces an older one)")
    .action(async (name: string) => {
      const { snapshot } = await ctx.client().call<{ snapshot: SnapshotSummary }>("POST", `/images/${encodeURIComponent(name)}/snapshot`, {}, SNAPSHOT_MS);
      ctx.out(() => `snapshot ${snapshot.id} of ${name} taken\n${showSnapshot(snapshot, name)}`, { snapshot });
    });
}
