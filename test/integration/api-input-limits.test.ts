import { mkdtempSync, readdirSync, rmSync, symlinkSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { connect } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { fakeElfKernel, realExt4 } from "../helpers/artifacts.js";
import { apiClient } from "../helpers/api.js";
import { built, startTestDaemon, type TestDaemon } from "../helpers/daemon.js";
import { netnsSkipReason } from "../helpers/netns.js";

const skip = netnsSkipReason() ?? built();

/**
 * One request on a raw connection. bangerd answers 413 and closes while the client may still be
 * uploading; a write into the closed socket fails (EPIPE) and Node then drops what was received
 * but not yet read, the answer included. So this client uploads in slices and stops as soon as
 * the answer starts, as a well-behaved client would; the answer is what this test is about.
 */
function rawPost(socket: string, path: string, framing: string, body: Buffer[]): Promise<string> {
  return new Promise((resolve) => {
    const s = connect(socket);
    let out = "";
    const timer = setTimeout(() => s.destroy(), 30_000);
    s.on("data", (b: Buffer) => (out += b.toString()));
    s.on("error", () => undefined);
    s.on("close", () => {
      clearTimeout(timer);
      resolve(out);
    });
    s.on("connect", () => {
      void (async () => {
        s.write(`POST ${path} HTTP/1.1\r\nHost: bangerd\r\nContent-Type: application/json\r\n${framing}\r\n\r\n`);
        for (const b of body) {
          for (let at = 0; at < b.length && out === "" && !s.destroyed; at += 64 * 1024) {
            if (!s.write(b.subarray(at, at + 64 * 1024))) await new Promise((r) => setTimeout(r, 5));
          }
        }
        if (out === "" && !s.destroyed) s.end();
      })();
    });
  });
}

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
    const huge = Buffer.from(JSON.stringify({ name: "bad-2", kernel, rootfs, bootArgs: "x".repeat(10 * 1024 * 1024) }));
    // Declared size: refused from the header, before any of the body is read (none is sent, so the
    // answer cannot be lost to a write into a closed socket).
    const sized = await rawPost(d.socket, "/v1/images", `Content-Length: ${huge.length}`, []);
    expect(sized).toMatch(/^HTTP\/1\.1 413 /);
    expect(sized).toContain("BODY_TOO_LARGE");
    expect(sized).toMatch(/larger than 1048576 bytes/);

    // Chunked: no Content-Length to trust, the daemon counts as it reads.
    const mib = Buffer.alloc(1024 * 1024, 0x20);
    const chunks = Array.from({ length: 10 }, () => Buffer.concat([Buffer.from(`${mib.length.toString(16)}\r\n`), mib, Buffer.from("\r\n")]));
    // Counted as read: the upload races bangerd's close, and a lost race loses the answer on the
    // client's side (see rawPost), so a few tries are allowed; every one must be refused.
    let streamed = "";
    for (let i = 0; i < 5 && streamed === ""; i++)
      streamed = await rawPost(d.socket, "/v1/vms", "Transfer-Encoding: chunked", [...chunks, Buffer.from("0\r\n\r\n")]);
    expect(streamed).toMatch(/^HTTP\/1\.1 413 /);
    expect(streamed).toContain("BODY_TOO_LARGE");
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
