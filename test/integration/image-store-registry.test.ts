import { existsSync, mkdtempSync, openSync, readdirSync, readFileSync, rmSync, statSync, writeSync, closeSync } from "node:fs";
import { tmpdir } from "node:os";
import { createHash } from "node:crypto";
import { join } from "node:path";
import { spawnSync } from "node:child_process";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { BangerError } from "../../src/domain/errors.js";
import type { Image } from "../../src/domain/types.js";
import { fakeElfKernel, fakeInitrd, realExt4 } from "../helpers/artifacts.js";
import { REGISTRY_BIN, cuttingProxy, imageNode, registryBlobPath, serveDir, startRegistry } from "../helpers/image-registry.js";

const hasMkfs = spawnSync("mkfs.ext4", ["-V"], { stdio: "ignore" }).status === 0;
const missing = [!existsSync(REGISTRY_BIN) && "docker-registry (apt-get install docker-registry)", !hasMkfs && "mkfs.ext4 (e2fsprogs)"].filter(Boolean);
const reason = missing.length ? ` (skipped: needs ${missing.join(", ")})` : "";

const never = () => new AbortController().signal;

async function codeOf(p: Promise<unknown>): Promise<string> {
  try {
    await p;
  } catch (e) {
    return e instanceof BangerError ? e.code : `not a BangerError: ${String(e)}`;
  }
  return "no error";
}

/** A boot set of real ext4 files (registration checks them) and a kernel/initrd with valid headers; `tag` makes it distinct. */
function bootSet(dir: string, tag: string) {
  const d = join(dir, tag);
  rmSync(d, { recursive: true, force: true });
  readdirSync(dir);
  spawnSync("mkdir", ["-p", d]);
  return {
    kernel: fakeElfKernel(d),
    initrd: fakeInitrd(d),
    rootfs: realExt4(d, "rootfs.ext4", { "etc/banger-image": `${tag}\n` }, 4),
    workSeed: realExt4(d, "work-seed.ext4", { "hello.txt": `hello from ${tag}\n` }, 2),
  };
}

/** Each file's content, hashed afresh from disk (vitest's deep equality on multi-MiB buffers is far too slow). */
const bytesOf = (img: Image) =>
  Object.fromEntries(img.artifacts.map((x) => [x.role, `${statSync(x.path).size}:${createHash("sha256").update(readFileSync(x.path)).digest("hex")}`]));
/** What pulls registered (app-world's node starts with one image of its own). */
const pulled = (node: ReturnType<typeof imageNode>) => node.store.listImages().filter((i) => i.pulledFrom !== undefined);
const ls = (dir: string) => (existsSync(dir) ? readdirSync(dir) : []);
const leftovers = (dir: string) => (existsSync(dir) ? readdirSync(dir, { recursive: true }).map(String) : []);

describe.skipIf(missing.length > 0)(`images by digest through a real OCI registry${reason}`, () => {
  let tmp: string;
  let registry: Awaited<ReturnType<typeof startRegistry>>;
  let origin: ReturnType<typeof imageNode>;
  let a: Image;
  let b: Image;

  beforeAll(async () => {
    tmp = mkdtempSync(join(tmpdir(), "banger-imgstore-"));
    registry = await startRegistry(tmp);
    origin = imageNode();
    a = await origin.images.register({
      name: "deb-a",
      ...bootSet(tmp, "a"),
      os: "debian",
      services: [
        { name: "ssh", port: 22 },
        { name: "opencode", port: 4096, timeoutMs: 300_000 },
      ],
    });
    b = await origin.images.register({ name: "deb-b", ...bootSet(tmp, "b"), os: "debian" });
  }, 60_000);

  afterAll(async () => {
    await registry?.stop();
    if (tmp) rmSync(tmp, { recursive: true, force: true });
  });

  it("pushes an OCI artifact (chunked and monolithic blobs) that another node pulls by digest, byte-identical", async () => {
    expect(a.digest).toMatch(/^sha256:[0-9a-f]{64}$/);
    const pushed = await origin.dist.push("deb-a", `${registry.url}/banger/deb:12`, { signal: never() });
    expect(pushed.reference).toBe(`${registry.url}/banger/deb:12`);
    expect(pushed.digest).toBe(a.digest);
    // What the registry holds is the OCI artifact the docs describe.
    const res = await fetch(`http://${registry.host}/v2/banger/deb/manifests/12`, { headers: { accept: "application/vnd.oci.image.manifest.v1+json" } });
    const manifest = (await res.json()) as {
      artifactType: string;
      config: { mediaType: string; digest: string };
      layers: { mediaType: string; annotations: Record<string, string> }[];
      annotations: Record<string, string>;
    };
    expect(res.headers.get("docker-content-digest")).toBe(pushed.manifestDigest);
    expect(manifest.artifactType).toBe("application/vnd.banger.image.v1");
    expect(manifest.config).toMatchObject({ mediaType: "application/vnd.banger.image.config.v1+json", digest: a.digest });
    expect(manifest.annotations["dev.banger.image.digest"]).toBe(a.digest);
    expect(manifest.layers.map((l) => [l.mediaType, l.annotations["org.opencontainers.image.title"]])).toEqual([
      ["application/vnd.banger.image.kernel.v1", "vmlinux"],
      ["application/vnd.banger.image.initrd.v1", "initramfs"],
      ["application/vnd.banger.image.rootfs.v1", "rootfs.ext4"],
      ["application/vnd.banger.image.work-seed.v1", "work-seed.ext4"],
    ]);
    // Addressable by the banger digest too.
    const byDigest = await fetch(`http://${registry.host}/v2/banger/deb/manifests/${a.digest!.replace(":", "-")}`, {
      method: "HEAD",
      headers: { accept: "application/vnd.oci.image.manifest.v1+json" },
    });
    expect(byDigest.headers.get("docker-content-digest")).toBe(pushed.manifestDigest);

    const node = imageNode(`[images]\nsources = ["${registry.url}/banger/deb"]\n`);
    const stages: string[] = [];
    const got = await node.dist.ensureImage(a.digest!, { signal: never(), onStage: (s) => stages.push(s.name) });
    expect(stages).toEqual(["resolve", "evict", "download", "register"]);
    expect(got.digest).toBe(a.digest);
    expect(got.name).toBe("deb-a");
    expect(got.pulledFrom).toBe(`${registry.url}/banger/deb`);
    expect(got.guest).toEqual(a.guest);
    expect(bytesOf(got)).toEqual(bytesOf(a));
    expect(got.artifacts.map((x) => x.path.startsWith(node.d.config.imagesDir))).toEqual([true, true, true, true]);
    // A second ask finds it here: nothing transferred.
    const again = await node.dist.pull({ digest: a.digest }, { signal: never() });
    expect(again).toMatchObject({ present: true, stages: [] });
    expect(leftovers(node.d.config.pullsDir).filter((f) => f !== "blobs")).toEqual([]);
  }, 60_000);

  it("refuses a tampered blob with IMAGE_DIGEST_MISMATCH and keeps nothing", async () => {
    await origin.dist.push("deb-b", `${registry.url}/banger/tamper:1`, { signal: never() });
    const rootfs = b.artifacts.find((x) => x.role === "rootfs")!;
    const blob = registryBlobPath(registry.storage, `sha256:${rootfs.sha256}`);
    const original = readFileSync(blob).subarray(2048, 2056);
    const poke = (bytes: Buffer) => {
      const fd = openSync(blob, "r+");
      writeSync(fd, bytes, 0, bytes.length, 2048);
      closeSync(fd);
    };
    poke(Buffer.from("tampered"));
    try {
      const node = imageNode();
      const dirsBefore = ls(node.d.config.imagesDir);
      const err = await node.dist.pull({ source: `${registry.url}/banger/tamper:1` }, { signal: never() }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(BangerError);
      expect((err as BangerError).code).toBe("IMAGE_DIGEST_MISMATCH");
      expect((err as BangerError).message).toContain(rootfs.sha256);
      expect(node.store.getImage(b.digest!)).toBeUndefined();
      expect(pulled(node)).toEqual([]);
      expect(ls(node.d.config.imagesDir)).toEqual(dirsBefore);
      expect(leftovers(node.d.config.pullsDir).filter((f) => f !== "blobs")).toEqual([]);
    } finally {
      // Restored for the later tests (the registry shares the blob between repositories).
      poke(original);
    }
  }, 60_000);

  it("an interrupted pull keeps its partial and the next pull resumes it with Range", async () => {
    await origin.dist.push("deb-a", `${registry.url}/banger/resume:1`, { signal: never() });
    const proxy = await cuttingProxy(registry.host, 100_000, 1);
    try {
      // One attempt per call: the cut fails this pull, so the second one has to resume from the partial file.
      const node = imageNode("", { attempts: 1 });
      const source = `oci://${proxy.host}/banger/resume:1`;
      const first = await codeOf(node.dist.pull({ source }, { signal: never() }));
      expect(first).toBe("IMAGE_SOURCE_FAILED");
      expect(pulled(node)).toEqual([]);
      const partials = readdirSync(join(node.d.config.pullsDir, "blobs"));
      expect(partials).toHaveLength(1);
      expect(statSync(join(node.d.config.pullsDir, "blobs", partials[0]!)).size).toBe(100_000);
      const got = (await node.dist.pull({ source }, { signal: never() })).image;
      expect(proxy.ranges).toContain("bytes=100000-");
      expect(got.digest).toBe(a.digest);
      expect(bytesOf(got)).toEqual(bytesOf(a));
      expect(readdirSync(join(node.d.config.pullsDir, "blobs"))).toEqual([]);
      // Within one call, a cut is retried from the partial without failing the pull.
      const proxy2 = await cuttingProxy(registry.host, 50_000, 2);
      try {
        const n2 = imageNode();
        const out = await n2.dist.pull({ source: `oci://${proxy2.host}/banger/resume:1` }, { signal: never() });
        expect(proxy2.cuts).toBe(2);
        // The cut retry is cut again after 50000 more bytes: two resumes, each from where the partial ends.
        expect(proxy2.ranges.filter((r) => r !== undefined)).toEqual(["bytes=50000-", "bytes=100000-"]);
        expect(bytesOf(out.image)).toEqual(bytesOf(a));
      } finally {
        await proxy2.close();
      }
    } finally {
      await proxy.close();
    }
  }, 60_000);

  it("a cancelled pull leaves nothing: no image, no partial", async () => {
    const proxy = await cuttingProxy(registry.host, 30_000, 1, true);
    try {
      const node = imageNode();
      const dirsBefore = ls(node.d.config.imagesDir);
      const ac = new AbortController();
      const run = node.dist.pull({ source: `oci://${proxy.host}/banger/resume:1` }, { signal: ac.signal });
      for (let i = 0; i < 200 && proxy.cuts === 0; i++) await new Promise((r) => setTimeout(r, 25));
      await new Promise((r) => setTimeout(r, 200));
      ac.abort();
      expect(await codeOf(run)).toBe("CANCELLED");
      expect(pulled(node)).toEqual([]);
      // Not even a resumable partial: a cancel keeps nothing.
      expect(leftovers(node.d.config.pullsDir)).toEqual(["blobs"]);
      expect(ls(node.d.config.imagesDir)).toEqual(dirsBefore);
    } finally {
      await proxy.close();
    }
  }, 60_000);

  it("evicts least recently used pulled images under images.store_max_gib, never an aliased or used one", async () => {
    const c = await origin.images.register({ name: "deb-c", ...bootSet(tmp, "c") });
    for (const img of ["deb-a", "deb-b", "deb-c"]) await origin.dist.push(img, `${registry.url}/banger/lru:${img}`, { signal: never() });
    const size = (i: Image) => i.artifacts.reduce((s, x) => s + x.sizeBytes, 0);
    // Room for two of these images, not three.
    const budgetGib = (size(a) + size(b) + size(c) / 2) / 1024 ** 3;
    const node = imageNode(`[images]\nsources = ["${registry.url}/banger/lru"]\nstore_max_gib = ${budgetGib}\n`);
    await node.dist.ensureImage(a.digest!, { signal: never() });
    await node.dist.ensureImage(b.digest!, { signal: never() });
    await new Promise((r) => setTimeout(r, 5));
    // Using a makes b the least recently used.
    await node.dist.ensureImage(a.digest!, { signal: never() });
    await node.dist.ensureImage(c.digest!, { signal: never() });
    expect(pulled(node).map((i) => i.name)).toEqual(["deb-a", "deb-c"]);
    expect(node.store.getImage(b.digest!)).toBeUndefined();
    // a aliased, c the least recent now but pinned by an alias too: nothing may go, so b does not fit.
    node.images.promote("deb-a", "stable");
    node.images.promote("deb-c", "other");
    const err = await node.dist.ensureImage(b.digest!, { signal: never() }).catch((e: unknown) => e);
    expect((err as BangerError).code).toBe("IMAGE_STORE_FULL");
    expect(pulled(node).map((i) => i.name)).toEqual(["deb-a", "deb-c"]);
    expect(leftovers(node.d.config.pullsDir).filter((f) => f !== "blobs")).toEqual([]);
  }, 120_000);

  it("pulls from an OCI image layout pushed to a directory and served over HTTP", async () => {
    const layout = join(tmp, "layout");
    const out = await origin.dist.push("deb-b", layout, { signal: never() });
    expect(out.reference).toBe(`${layout}#deb-b`);
    await origin.dist.push("deb-a", `${layout}#stable`, { signal: never() });
    const index = JSON.parse(readFileSync(join(layout, "index.json"), "utf8")) as { manifests: { annotations: Record<string, string> }[] };
    expect(index.manifests.map((m) => m.annotations["org.opencontainers.image.ref.name"])).toEqual(["deb-b", "stable"]);
    const server = await serveDir(layout);
    try {
      const node = imageNode(`[images]\nsources = ["${server.url}"]\n`);
      const got = await node.dist.ensureImage(b.digest!, { signal: never() });
      expect(bytesOf(got)).toEqual(bytesOf(b));
      const tagged = await node.dist.pull({ source: `${server.url}#stable` }, { signal: never() });
      expect(tagged.image.digest).toBe(a.digest);
      // Asking a source for a digest it does not hold is a clear miss, not some other image.
      const code = await codeOf(node.dist.pull({ source: server.url, digest: `sha256:${"0".repeat(64)}` }, { signal: never() }));
      expect(code).toBe("IMAGE_NOT_FOUND");
    } finally {
      await server.close();
    }
  }, 60_000);
});
