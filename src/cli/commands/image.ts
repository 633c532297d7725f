import { resolve } from "node:path";
import type { Command } from "commander";
import { InvalidArgumentError } from "commander";
import { describeBuild } from "../../domain/build.js";
import type { GuestService, Image } from "../../domain/types.js";
import type { CliContext } from "../context.js";
import { positiveInt } from "../parse.js";
import { bytes, keyValues, ms, table } from "../output.js";
import { registerImageBuild } from "./image-build.js";
import { registerImageSnapshot, showSnapshot } from "./image-snapshot.js";
import { registerImageStore } from "./image-store.js";
import type { SnapshotSummary } from "../../app/image-snapshot.js";

function parseService(spec: string, acc: GuestService[] = []): GuestService[] {
  const m = /^([a-z0-9][a-z0-9_-]*):(\d{1,5})(?::(\d+))?$/i.exec(spec);
  if (!m || Number(m[2]) < 1 || Number(m[2]) > 65535) {
    throw new InvalidArgumentError("expected name:port or name:port:timeout_s, e.g. opencode:4096 or opencode:4096:300");
  }
  return [...acc, { name: m[1], port: Number(m[2]), ...(m[3] ? { timeoutMs: Number(m[3]) * 1000 } : {}) }];
}

const abs = (p?: string) => (p === undefined ? undefined : resolve(p));

function showImage(img: Image): string {
  return (
    keyValues([
      ["name", img.name],
      ["id", img.id],
      ["digest", img.digest ?? "-"],
      ...(img.pulledFrom ? [["pulled from", `${img.pulledFrom} (last used ${img.lastUsedAt ?? img.createdAt})`] as [string, string]] : []),
      ["status", img.status === "ok" ? "ok" : `BROKEN: ${img.statusDetail}`],
      ["aliases", img.aliases.join(", ") || "-"],
      ["os", img.guest.os],
      ["services", img.guest.services.map((s) => `${s.name}:${s.port}`).join(", ")],
      ["agent", img.guest.agent ? "banger-agent (readiness pushed)" : "none found (readiness polled)"],
      ...(img.guest.snapshot ? [["snapshot", "kept current by bangerd (registered with --snapshot)"] as [string, string]] : []),
      ["boot args", img.bootArgs],
      ["work-seed", img.artifacts.some((a) => a.role === "work_seed") ? "yes" : "no (VMs get an empty /root: fallback path)"],
      ["created", img.createdAt],
      ["built", img.build ? describeBuild(img.build) : undefined],
    ]) +
    "\n\n" +
    table(
      ["ARTIFACT", "SIZE", "SHA256", "PATH"],
      img.artifacts.map((a) => [a.role, bytes(a.sizeBytes), a.sha256.slice(0, 16), a.path]),
    ) +
    (img.build
      ? "\n\n" +
        table(
          ["STEP", "SHA256", "WHAT"],
          img.build.steps.map((s) => [s.kind, s.sha256.slice(0, 16), s.label.split("\n")[0]]),
        ) +
        "\n\n" +
        table(
          ["BUILD STAGE", "TIME", "DETAIL"],
          img.build.stages.map((s) => [s.stage, ms(s.ms), s.detail?.split("\n")[0]]),
        )
      : "")
  );
}

export function registerImage(program: Command, ctx: CliContext): void {
  const im = program.command("image").description("register, promote, list and remove managed images");

  im.command("register")
    .description("copy a boot set into the managed image store")
    .requiredOption("--name <name>", "unique image name, e.g. debian-12-20261125-1")
    .requiredOption("--kernel <file>", "ELF vmlinux (x86-64)")
    .option("--initrd <file>", "initramfs (cpio, optionally compressed)")
    .requiredOption("--rootfs <file>", "ext4 root filesystem")
    .option("--work-seed <file>", "ext4 seed for each VM's /root disk")
    .option("--boot-args <args>", "kernel command line (network and console are added by banger)")
    .option("--os <os>", "guest OS label", "linux")
    .option("--service <name:port[:timeout_s]>", "guest service to wait for after SSH (repeatable)", parseService)
    .option("--vcpus <n>", "default vCPUs", positiveInt)
    .option("--memory <mib>", "default memory (MiB)", positiveInt)
    .option("--work-disk <gib>", "default /root disk size (GiB)", positiveInt)
    .option("--snapshot", "keep a golden snapshot of it current: bangerd takes one in the background when it has none that fits")
    .action(async (o) => {
      const services: GuestService[] = o.service ?? [];
      if (!services.some((s) => s.port === 22)) services.unshift({ name: "ssh", port: 22 });
      const { image } = await ctx.client().call<{ image: Image }>(
        "POST",
        "/images",
        {
          name: o.name,
          kernel: abs(o.kernel),
          initrd: abs(o.initrd),
          rootfs: abs(o.rootfs),
          workSeed: abs(o.workSeed),
          bootArgs: o.bootArgs,
          os: o.os,
          services,
          defaultVcpus: o.vcpus,
          defaultMemoryMib: o.memory,
          defaultWorkDiskGib: o.workDisk,
          ...(o.snapshot ? { snapshot: true } : {}),
        },
        600_000,
      );
      ctx.out(() => `registered ${image.name}\n\n${showImage(image)}`, { image });
    });

  registerImageBuild(im, ctx, parseService);

  im.command("ls")
    .description("list images and their aliases")
    .action(async () => {
      const { images } = await ctx.client().call<{ images: Image[] }>("GET", "/images");
      ctx.out(
        () =>
          images.length === 0
            ? "no images; build one with `make image-debian` or use `banger image register`"
            : table(
                ["NAME", "ALIASES", "STATUS", "OS", "WORK-SEED", "SIZE", "DIGEST", "CREATED"],
                images.map((i) => [
                  i.name,
                  i.aliases.join(","),
                  i.status === "ok" ? "ok" : `broken: ${i.statusDetail}`,
                  i.guest.os,
                  i.artifacts.some((a) => a.role === "work_seed") ? "yes" : "no (fallback)",
                  bytes(i.artifacts.reduce((s, a) => s + a.sizeBytes, 0)),
                  i.digest ? i.digest.slice(0, 19) : "-",
                  i.createdAt.slice(0, 19).replace("T", " "),
                ]),
              ),
        { images },
      );
    });

  im.command("show <image>")
    .description("details and artifacts of an image (name or alias)")
    .action(async (name: string) => {
      const res = await ctx.client().call<{ image: Image; snapshot: SnapshotSummary | null }>("GET", `/images/${encodeURIComponent(name)}`);
      ctx.out(() => `${showImage(res.image)}\n\n${showSnapshot(res.snapshot, res.image.name)}`, res);
    });

  registerImageSnapshot(im, ctx);
  registerImageStore(im, ctx);

  im.command("promote <image>")
    .description("point an alias at an image; promoting an older build is the rollback")
    .requiredOption("--as <alias>", "alias, e.g. debian")
    .action(async (name: string, o: { as: string }) => {
      const { image } = await ctx.client().call<{ image: Image }>("POST", `/images/${encodeURIComponent(name)}/promote`, { alias: o.as });
      ctx.out(`${o.as} -> ${image.name}`, { alias: o.as, image });
    });

  im.command("warm <image>")
    .description("fill the image's warm disk pool now and wait until it is ready")
    .action(async (name: string) => {
      const { pool } = await ctx.client().call<{ pool: Record<string, number> }>("POST", `/images/${encodeURIComponent(name)}/warm`, {}, 600_000);
      ctx.out(`warm disk sets per image id: ${JSON.stringify(pool)}`, { pool });
    });

  im.command("rm <image>")
    .description("remove an image no VM or alias uses")
    .action(async (name: string) => {
      await ctx.client().call("DELETE", `/images/${encodeURIComponent(name)}`);
      ctx.out(`removed ${name}`, { removed: name });
    });
}
