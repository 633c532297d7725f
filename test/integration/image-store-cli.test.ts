import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Image } from "../../src/domain/types.js";
import { fakeElfKernel, fakeInitrd, realExt4 } from "../helpers/artifacts.js";
import { built, startTestDaemon, type TestDaemon } from "../helpers/daemon.js";
import { netnsSkipReason } from "../helpers/netns.js";

const skip = netnsSkipReason() ?? built();

describe.skipIf(skip)(`image push and pull through the real CLI and daemon${skip ? ` (skipped: ${skip})` : ""}`, () => {
  let d: TestDaemon;
  let art: string;

  beforeAll(async () => {
    d = await startTestDaemon();
    art = mkdtempSync(join(tmpdir(), "banger-imgcli-"));
  });
  afterAll(async () => {
    await d?.destroy();
    if (art) rmSync(art, { recursive: true, force: true });
  });

  it("pushes an image to a layout directory, pulls it back by tag after rm, shows its digest; a bad digest is refused", async () => {
    const reg = await d.cli([
      "--json",
      "image",
      "register",
      "--name",
      "cli-img",
      "--kernel",
      fakeElfKernel(art),
      "--initrd",
      fakeInitrd(art),
      "--rootfs",
      realExt4(art, "rootfs.ext4"),
      "--os",
      "debian",
    ]);
    expect(reg.stderr).toBe("");
    const image = reg.json<{ image: Image }>().image;
    expect(image.digest).toMatch(/^sha256:[0-9a-f]{64}$/);
    const show = await d.cli(["image", "show", "cli-img"]);
    expect(show.stdout).toContain(image.digest);

    const layout = join(art, "layout");
    const push = await d.cli(["--json", "image", "push", "cli-img", `${layout}#v1`]);
    expect(push.stderr).toBe("");
    expect(push.json<{ digest: string; reference: string }>()).toMatchObject({ digest: image.digest, reference: `${layout}#v1` });
    expect(readFileSync(join(layout, "index.json"), "utf8")).toContain(image.digest!);

    expect((await d.cli(["image", "rm", "cli-img"])).code).toBe(0);
    const pull = await d.cli(["--json", "image", "pull", `${layout}#v1`, "--name", "cli-back"]);
    expect(pull.stderr).toBe("");
    const out = pull.json<{ image: Image; present: boolean; stages: { name: string }[] }>();
    expect(out.present).toBe(false);
    expect(out.image).toMatchObject({ name: "cli-back", digest: image.digest, pulledFrom: `${layout}#v1` });
    expect(out.stages.map((s) => s.name)).toEqual(["resolve", "evict", "download", "register"]);
    // By digest it is here now; the image list shows the digest's head.
    const again = await d.cli(["--json", "image", "pull", image.digest!]);
    expect(again.json<{ present: boolean }>().present).toBe(true);
    expect((await d.cli(["image", "ls"])).stdout).toContain(image.digest!.slice(0, 19));

    const wrong = await d.cli(["image", "pull", layout, "--digest", `sha256:${"1".repeat(64)}`]);
    expect(wrong.code).not.toBe(0);
    expect(wrong.stderr).toContain(`no image sha256:${"1".repeat(64)}`);
    const malformed = await d.cli(["image", "pull", "sha256:nothex"]);
    expect(malformed.code).not.toBe(0);
    expect(malformed.stderr).toContain("sha256:nothex is not an image digest");
  });
});
