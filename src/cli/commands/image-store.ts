import type { Command } from "commander";
import type { Image } from "../../domain/types.js";
import type { CliContext } from "../context.js";
import { ms, table } from "../output.js";

const LONG_MS = 6 * 3600_000;

/** `banger image push` and `banger image pull`: images by digest (docs/images.md, "Images by digest"). */
export function registerImageStore(im: Command, ctx: CliContext): void {
  im.command("push <image> <dest>")
    .description("publish an image: oci://host[:port]/repo[:tag] (an OCI registry) or an absolute directory[#tag] (an OCI image layout)")
    .option("--insecure", "plain HTTP to a registry that is not on loopback")
    .action(async (name: string, dest: string, o: { insecure?: boolean }) => {
      const out = await ctx
        .client()
        .call<{ reference: string; manifestDigest: string; digest: string }>(
          "POST",
          `/images/${encodeURIComponent(name)}/push`,
          { dest, ...(o.insecure ? { insecure: true } : {}) },
          LONG_MS,
        );
      ctx.out(`pushed ${name} (${out.digest}) to ${out.reference}\nmanifest ${out.manifestDigest}`, out);
    });

  im.command("pull <source>")
    .description("pull an image: oci://host[:port]/repo[:tag], https://host/layout/[#tag], a layout directory, or sha256:<hex> from images.sources")
    .option("--digest <sha256:hex>", "the image wanted at the source (checked: anything else is refused)")
    .option("--name <name>", "register it under this name (default: the name it was pushed under)")
    .option("--insecure", "plain HTTP to a source that is not on loopback")
    .action(async (source: string, o: { digest?: string; name?: string; insecure?: boolean }) => {
      const byDigest = source.startsWith("sha256:");
      const body = {
        ...(byDigest ? { digest: source } : { source, ...(o.digest ? { digest: o.digest } : {}) }),
        ...(o.name ? { name: o.name } : {}),
        ...(o.insecure ? { insecure: true } : {}),
      };
      const out = await ctx.client().call<{ image: Image; present: boolean; stages: { name: string; ms: number }[] }>("POST", "/images/pull", body, LONG_MS);
      ctx.out(
        () =>
          out.present
            ? `${out.image.name} (${out.image.digest}) is already here`
            : `pulled ${out.image.name} (${out.image.digest})\n\n${table(
                ["STAGE", "TIME"],
                out.stages.map((s) => [s.name, ms(s.ms)]),
              )}`,
        out,
      );
    });
}
