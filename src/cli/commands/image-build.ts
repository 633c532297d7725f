import type { Command } from "commander";
import { InvalidArgumentError } from "commander";
import { parseDurationMs } from "../../domain/build.js";
import type { GuestService } from "../../domain/types.js";
import type { CliContext } from "../context.js";
import { positiveInt } from "../parse.js";

const collect = (v: string, acc: string[] = []) => [...acc, v];

/** "30m", "90s", "2h" or plain seconds → ms. */
function duration(v: string): number {
  try {
    return parseDurationMs(v);
  } catch {
    throw new InvalidArgumentError("expected a duration such as 30m, 90s or 2h");
  }
}

export function registerImageBuild(im: Command, ctx: CliContext, parseService: (v: string, acc?: GuestService[]) => GuestService[]): void {
  // commander keeps each flag's values apart; its per-occurrence events keep the order they were typed in.
  const steps: { kind: "script" | "run"; value: string }[] = [];
  const build = im
    .command("build")
    .description("build a new image by running scripts and commands as root in a VM booted from an existing one")
    .requiredOption("--from <image>", "base image (name or alias)")
    .requiredOption("--name <name>", "name of the new image, e.g. deb-tools-1")
    .option("--script <file>", "script to run in the guest (repeatable; runs in the order given among --script and --run)", collect)
    .option("--run <cmd>", "command to run in the guest (repeatable; runs in the order given among --script and --run)", collect)
    .option("--packages <list>", "comma-separated packages for the base OS's package manager (apt-get, apk or xbps-install), installed first")
    .option("--rootfs-size <size>", "grow the rootfs to this size before the builder boots, e.g. 2G")
    .option("--nat", "give the builder VM outbound network (NAT)", false)
    .option("--service <name:port[:timeout_s]>", "the new image's services (repeatable; default: the base's)", parseService)
    .option("--timeout <duration>", "cancel the build after this long, e.g. 45m or 2h (default: 30m)", duration)
    .option("--work-disk <gib>", "the builder's /root disk size (GiB); the new work-seed is shrunk to fit its contents", positiveInt)
    .option("--promote-as <alias>", "point this alias at the new image when it is built")
    .action(async (o: Record<string, unknown>) => {
      const { runImageBuild } = await import("../image-build-run.js");
      await runImageBuild(ctx, o, steps);
    });
  build.on("option:script", (v: string) => steps.push({ kind: "script", value: v }));
  build.on("option:run", (v: string) => steps.push({ kind: "run", value: v }));
}
