import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { built, startTestDaemon, type TestDaemon } from "../helpers/daemon.js";
import { builtDebianImage, guestSkipReason, registerArgs } from "../helpers/guest-image.js";
import { hostLeftovers } from "../helpers/leaks.js";
import { createNetns, type Netns } from "../helpers/netns.js";

const skip = built() ?? guestSkipReason();
const IMAGE = "debian-kept-1";

interface ShowJson {
  image: { guest: { snapshot?: boolean } };
  snapshot: { id: string } | null;
}

/**
 * An image registered with --snapshot and nobody running `image snapshot`: bangerd takes the
 * golden snapshot by itself in the background (snapshot-keeper.ts), and the next create restores
 * it. A real Debian guest under QEMU.
 */
describe.skipIf(skip)(`e2e: bangerd keeps a registered image's snapshot by itself${skip ? ` (skipped: ${skip})` : ""}`, () => {
  let ns: Netns;
  let d: TestDaemon;

  beforeAll(async () => {
    ns = await createNetns("keep");
    d = await startTestDaemon({ ns, config: { memory_mib: 1024, work_disk_gib: 2 } });
  });

  afterAll(async () => {
    await d?.destroy();
    await ns?.destroy();
  });

  it("registering with --snapshot is enough: the snapshot appears, and a create restores it", async () => {
    const reg = await d.cli([...registerArgs(builtDebianImage()!, IMAGE, { services: false }), "--snapshot"], { timeoutMs: 300_000 });
    expect(reg.code, reg.stderr).toBe(0);
    expect(reg.stdout).toContain("kept current by bangerd");
    let show: ShowJson | undefined;
    const t0 = Date.now();
    while (Date.now() - t0 < 300_000) {
      show = (await d.cli(["--json", "image", "show", IMAGE])).json<ShowJson>();
      if (show.snapshot) break;
      await new Promise((r) => setTimeout(r, 1_000));
    }
    expect(show?.image.guest.snapshot).toBe(true);
    expect(show?.snapshot, "no snapshot within 300 s of the register").toBeTruthy();
    console.log(`snapshot taken by bangerd ${Date.now() - t0} ms after the register`);
    const r = await d.cli(["--json", "vm", "create", "--image", IMAGE, "--name", "kept"], { timeoutMs: 300_000 });
    expect(r.code, r.stderr).toBe(0);
    expect(r.json<{ vm: { bootSource?: string } }>().vm.bootSource).toBe(`snapshot ${show!.snapshot!.id}`);
    expect((await d.cli(["vm", "ssh", "kept", "--", "hostname"], { timeoutMs: 60_000 })).stdout.trim()).toBe("kept");
    expect((await d.cli(["vm", "rm", "kept", "--force"], { timeoutMs: 120_000 })).code).toBe(0);
    // The golden VM went with its pass, and the VM with its rm.
    expect((await hostLeftovers(ns)).vmmProcesses).toEqual([]);
  });
});
