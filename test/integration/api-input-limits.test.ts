import { mkdtempSync, readdirSync, rmSync, symlinkSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Readable } from "node:stream";
import { Pool } from "undici";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { fakeElfKernel, realExt4 } from "../helpers/artifacts.js";
import { apiClient } from "../helpers/api.js";
import { built, startTestDaemon, type TestDaemon } from "../helpers/daemon.js";
import { netnsSkipReason } from "../helpers/netns.js";

const skip = netnsSkipReason() ?? built();

describe.skipIf(skip)(`the API refuses what is not its business${skip ? ` (skipped: ${skip})` : ""}`, () => {
  let d: TestDaemon;
  let api: ReturnType<typeof apiClient>;
  let art: string;
  let kernel: string, rootfs: string;
  let registered: { kernel: string; rootfs: string };

  beforeAll(async () => {
    d = await startTestDaemon();
    api = apiClient(d.socket);
    art = mkdtempSync(join(tmpdir(), "banger-input-"));
    kernel = fakeElfKernel(art);
    rootfs = realExt4(art, "rootfs.ext4");
    const r = await api.call("POST", "/images", { name: "good-1", kernel, rootfs });
    expect(r.status, JSON.stringify(r.body)).toBe(201);
    const paths = Object.fromEntries((r.body.image.artifacts as { role: string; path: string }[]).map((a) => [a.role, a.path]));
    registered = { kernel: paths.kernel, rootfs: paths.rootfs };
  });
  afterAll(async () => {
    await api?.close();
    await d?.destroy();
    if (art) rmSync(art, { recursive: true, force: true });
  });

  async function refused(body: Record<string, unknown>, code: string, message: RegExp): Promise<void> {
    const r = await api.call("POST", "/images", { name: "bad-1", ...body });
    expect(r.status, JSON.stringify(r.body)).toBe(code === "BODY_TOO_LARGE" ? 413 : 400);
    expect(r.body.error).toMatchObject({ code, message: expect.stringMatching(message), hint: expect.any(String) });
  }

  it("refuses relative paths", async () => {
    await refused({ kernel: "vmlinux", rootfs }, "PATH_NOT_ALLOWED", /--kernel vmlinux: must be an absolute path/);
    await refused({ kernel, rootfs: "./rootfs.ext4" }, "PATH_NOT_ALLOWED", /--rootfs \.\/rootfs\.ext4: must be an absolute path/);
  });

  it("refuses paths into the state dir, however spelled", async () => {
    await refused({ kernel: registered.kernel, rootfs }, "PATH_NOT_ALLOWED", /inside banger's state directory/);
    await refused({ kernel, rootfs: `${art}/../../${registered.rootfs}` }, "PATH_NOT_ALLOWED", /inside banger's state directory/);
    await refused({ kernel, rootfs: join(d.stateDir, "banger.db") }, "PATH_NOT_ALLOWED", /inside banger's state directory/);
  });

  it("refuses symlinks that lead into the state dir, to a file or through a directory", async () => {
    symlinkSync(registered.rootfs, join(art, "looks-fine.ext4"));
    symlinkSync(d.stateDir, join(art, "state-dir"));
    await refused({ kernel, rootfs: join(art, "looks-fine.ext4") }, "PATH_NOT_ALLOWED", /resolves to .*rootfs\.ext4, inside banger's state directory/);
    await refused({ kernel, rootfs: join(art, "state-dir", "banger.db") }, "PATH_NOT_ALLOWED", /resolves to .*banger\.db, inside banger's state directory/);
  });

  it("refuses a 10 MB JSON body with 413, whether sized or streamed", async () => {
    const huge = JSON.stringify({ name: "bad-2", kernel, rootfs, bootArgs: "x".repeat(10 * 1024 * 1024) });
    const sized = await api.call("POST", "/images", JSON.parse(huge));
    expect(sized.status).toBe(413);
    expect(sized.body.error).toMatchObject({ code: "BODY_TOO_LARGE", message: expect.stringMatching(/larger than 1048576 bytes/) });

    // Chunked: no Content-Length to trust, the daemon counts as it reads.
    const pool = new Pool("http://bangerd", { socketPath: d.socket });
    try {
      const res = await pool.request({
        method: "POST",
        path: "/v1/vms",
        headers: { "content-type": "application/json" },
        body: Readable.from(
          (function* () {
            for (let i = 0; i < 10; i++) yield Buffer.alloc(1024 * 1024, 0x20);
          })(),
        ),
      });
      expect(res.statusCode).toBe(413);
      expect(((await res.body.json()) as { error: { code: string } }).error.code).toBe("BODY_TOO_LARGE");
    } finally {
      await pool.close();
    }
  });

  it("registered nothing from any of it", async () => {
    // The 413 closed its connection with the body unread; start from fresh connections.
    await api.close();
    api = apiClient(d.socket);
    const ls = await api.call("GET", "/images");
    expect((ls.body.images as { name: string }[]).map((i) => i.name)).toEqual(["good-1"]);
    expect(readdirSync(join(d.stateDir, "images"))).toHaveLength(1);
    expect((await api.call("GET", "/vms")).body.vms).toEqual([]);
  });
});
