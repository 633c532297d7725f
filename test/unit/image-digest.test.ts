import { describe, expect, it } from "vitest";
import { createHash } from "node:crypto";
import { BangerError } from "../../src/domain/errors.js";
import { canonicalManifest, imageDigest, isImageDigest, manifestOf, parseManifest } from "../../src/domain/image-digest.js";
import type { Artifact, Image } from "../../src/domain/types.js";
import { ociManifest, readOciManifest, remoteImage } from "../../src/adapters/image-store/artifact.js";

const hex = (t: string) => createHash("sha256").update(t).digest("hex");
const art = (role: Artifact["role"], ch: string, size: number, dir = "/a"): Artifact => ({
  role,
  path: `${dir}/${role}`,
  sha256: ch.repeat(64),
  sizeBytes: size,
});
const img = (over: Partial<Image> = {}): Pick<Image, "guest" | "bootArgs" | "artifacts"> => ({
  guest: { os: "debian", services: [{ name: "ssh", port: 22 }] },
  bootArgs: "console=ttyS0 root=/dev/vda rw",
  artifacts: [art("kernel", "a", 10), art("rootfs", "c", 30), art("work_seed", "d", 40)],
  ...over,
});

function codeOf(f: () => unknown): string | undefined {
  try {
    f();
  } catch (e) {
    return e instanceof BangerError ? e.code : "other";
  }
  return undefined;
}

describe("image digest", () => {
  it("is sha256 over the canonical manifest, written sha256:<hex>", () => {
    const m = manifestOf(img());
    const text = canonicalManifest(m);
    expect(text).toBe(
      `{"schema":"banger.image.v1","os":"debian","bootArgs":"console=ttyS0 root=/dev/vda rw","services":[{"name":"ssh","port":22}],"files":[{"role":"kernel","size":10,"sha256":"${"a".repeat(64)}"},{"role":"rootfs","size":30,"sha256":"${"c".repeat(64)}"},{"role":"work_seed","size":40,"sha256":"${"d".repeat(64)}"}]}`,
    );
    expect(imageDigest(img(), hex)).toBe(`sha256:${createHash("sha256").update(text).digest("hex")}`);
    expect(isImageDigest(imageDigest(img(), hex))).toBe(true);
    expect(isImageDigest(`sha256:${"A".repeat(64)}`)).toBe(false);
  });

  it("ignores where the files are and their order, not what they are or how they boot", () => {
    const base = imageDigest(img(), hex);
    expect(imageDigest(img({ artifacts: [art("work_seed", "d", 40, "/b"), art("rootfs", "c", 30, "/b"), art("kernel", "a", 10, "/b")] }), hex)).toBe(base);
    expect(imageDigest(img({ artifacts: [art("kernel", "a", 10), art("rootfs", "e", 30), art("work_seed", "d", 40)] }), hex)).not.toBe(base);
    expect(imageDigest(img({ artifacts: [art("kernel", "a", 11), art("rootfs", "c", 30), art("work_seed", "d", 40)] }), hex)).not.toBe(base);
    expect(imageDigest(img({ artifacts: [art("kernel", "a", 10), art("rootfs", "c", 30)] }), hex)).not.toBe(base);
    expect(imageDigest(img({ bootArgs: "console=ttyS0" }), hex)).not.toBe(base);
    expect(imageDigest(img({ guest: { os: "alpine", services: [{ name: "ssh", port: 22 }] } }), hex)).not.toBe(base);
    expect(imageDigest(img({ guest: { os: "debian", services: [{ name: "ssh", port: 22, timeoutMs: 5000 }] } }), hex)).not.toBe(base);
  });

  it("parses back what it writes, and refuses manifests that are not a boot set", () => {
    const text = canonicalManifest(manifestOf(img()));
    expect(canonicalManifest(parseManifest(text))).toBe(text);
    const bad = (v: unknown) => codeOf(() => parseManifest(typeof v === "string" ? v : JSON.stringify(v)));
    const good = JSON.parse(text) as Record<string, unknown>;
    expect(bad("{")).toBe("INVALID_IMAGE_MANIFEST");
    expect(bad({ ...good, schema: "other" })).toBe("INVALID_IMAGE_MANIFEST");
    expect(bad({ ...good, files: [{ role: "kernel", size: 1, sha256: "a".repeat(64) }] })).toBe("INVALID_IMAGE_MANIFEST");
    expect(bad({ ...good, files: [...(good.files as object[]), { role: "kernel", size: 1, sha256: "a".repeat(64) }] })).toBe("INVALID_IMAGE_MANIFEST");
    expect(
      bad({
        ...good,
        files: [
          { role: "kernel", size: 1, sha256: "XYZ" },
          { role: "rootfs", size: 1, sha256: "a".repeat(64) },
        ],
      }),
    ).toBe("INVALID_IMAGE_MANIFEST");
    expect(bad({ ...good, files: [{ role: "bios", size: 1, sha256: "a".repeat(64) }] })).toBe("INVALID_IMAGE_MANIFEST");
  });
});

describe("the OCI artifact of an image", () => {
  const i = img();
  const manifestText = canonicalManifest(manifestOf(i));
  const set = {
    digest: imageDigest(i, hex),
    manifestText,
    name: "deb",
    files: i.artifacts.map((a) => ({ role: a.role, path: a.path, sha256: a.sha256, size: a.sizeBytes })),
  };

  it("round-trips: the manifest names the config by the banger digest and one layer per file", () => {
    const m = readOciManifest(Buffer.from(ociManifest(set)), "test", set.digest);
    const remote = remoteImage("test", m, Buffer.from(manifestText));
    expect(remote.digest).toBe(set.digest);
    expect(remote.name).toBe("deb");
    expect(remote.files).toEqual(i.artifacts.map((a) => ({ role: a.role, digest: `sha256:${a.sha256}`, size: a.sizeBytes })));
    expect(ociManifest(set)).toBe(ociManifest({ ...set, files: [...set.files].reverse() }));
  });

  it("refuses another digest than the one asked for, a config that does not hash to it, and a layer that differs from the config", () => {
    const bytes = Buffer.from(ociManifest(set));
    expect(codeOf(() => readOciManifest(bytes, "test", `sha256:${"0".repeat(64)}`))).toBe("IMAGE_DIGEST_MISMATCH");
    const m = readOciManifest(bytes, "test");
    expect(codeOf(() => remoteImage("test", m, Buffer.from(manifestText.replace("debian", "debiaN"))))).toBe("IMAGE_DIGEST_MISMATCH");
    const swapped = { ...m, layers: m.layers.map((l, n) => (n === 1 ? { ...l, digest: `sha256:${"f".repeat(64)}` } : l)) };
    expect(codeOf(() => remoteImage("test", swapped, Buffer.from(manifestText)))).toBe("IMAGE_DIGEST_MISMATCH");
    expect(
      codeOf(() =>
        readOciManifest(
          Buffer.from(
            JSON.stringify({
              mediaType: "application/vnd.oci.image.manifest.v1+json",
              config: { mediaType: "application/vnd.oci.image.config.v1+json" },
              layers: [],
            }),
          ),
          "test",
        ),
      ),
    ).toBe("INVALID_IMAGE_MANIFEST");
  });
});
