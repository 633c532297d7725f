import { randomUUID } from "node:crypto";
import { basename, join } from "node:path";
import { BangerError } from "../domain/errors.js";
import { validateImageName, validateName } from "../domain/names.js";
import type { BuildInfo } from "../domain/build.js";
import { GUEST_AGENT_PATH, type Artifact, type ArtifactRole, type GuestService, type Image } from "../domain/types.js";
import type { PinnedFile } from "../ports/files.js";
import type { AppConfig, AppDeps } from "./deps.js";

type ImageDeps = Pick<AppDeps, "store" | "disks" | "files" | "diskPool" | "vmPool" | "log"> & { config: Pick<AppConfig, "imagesDir" | "stateDir"> };
import { checkExt4, checkInitrd, checkKernel, checkPlainFile } from "./artifact-checks.js";
import { pinImageSources } from "./image-sources.js";

export const DEFAULT_BOOT_ARGS = "console=ttyS0 reboot=k panic=1 rootfstype=ext4 root=/dev/vda rw";

export interface RegisterInput {
  name: string;
  kernel: string;
  initrd?: string;
  rootfs: string;
  workSeed?: string;
  bootArgs?: string;
  os?: string;
  services?: GuestService[];
  /** Keep a golden snapshot of it current in the background. */
  snapshot?: boolean;
  defaultVcpus?: number;
  defaultMemoryMib?: number;
  defaultWorkDiskGib?: number;
  /** Provenance of an `image build` result. */
  build?: BuildInfo;
  /** Roles whose source files the caller hands over: moved (one rename) instead of copied. */
  move?: ArtifactRole[];
  /** Set by `image pull`: where it came from; such images are evicted under images.store_max_gib. */
  pulledFrom?: string;
}

const FILE_NAMES: Record<ArtifactRole, string> = {
  kernel: "vmlinux",
  initrd: "initrd",
  rootfs: "rootfs.ext4",
  work_seed: "work-seed.ext4",
};

export function imageNotFound(name: string): BangerError {
  return new BangerError("IMAGE_NOT_FOUND", `no image named ${name}`, {
    hint: "register one with `banger image register` or build one with `make image-debian`; `banger image ls` lists what exists",
  });
}

export class ImageService {
  constructor(private readonly d: ImageDeps) {}

  list(): Image[] {
    return this.d.store.listImages();
  }

  get(nameOrAlias: string): Image {
    const img = this.d.store.getImage(nameOrAlias);
    if (!img) throw imageNotFound(nameOrAlias);
    return img;
  }

  /**
   * `internal` is for banger's own callers (image build hands over files from the state dir);
   * the API never sets it, so what a client names stays outside the state dir.
   */
  async register(input: RegisterInput, opts: { internal?: boolean } = {}): Promise<Image> {
    validateImageName(input.name);
    if (this.d.store.getImage(input.name)) {
      throw new BangerError("IMAGE_EXISTS", `an image or alias named ${input.name} already exists`, {
        hint: "pick a new name (builds are immutable: e.g. add a build number) or `banger image rm` the old one",
      });
    }
    const sources: [ArtifactRole, string | undefined][] = [
      ["kernel", input.kernel],
      ["initrd", input.initrd],
      ["rootfs", input.rootfs],
      ["work_seed", input.workSeed],
    ];
    // Every file is opened (and vetted) once; checks and copies read the pinned descriptor.
    const pinned = await pinImageSources(this.d.files, opts.internal ? undefined : this.d.config.stateDir, sources);
    try {
      return await this.copyIn(input, pinned);
    } finally {
      await Promise.all([...pinned.values()].map((f) => f.close()));
    }
  }

  private async copyIn(input: RegisterInput, pinned: Map<ArtifactRole, PinnedFile>): Promise<Image> {
    // Validate everything before copying anything: a bad input leaves no trace.
    for (const [role, file] of pinned) {
      const path = file.readPath;
      checkPlainFile(role, file.realPath, file.info);
      if (role === "kernel") await checkKernel(this.d.files, path, file.realPath);
      if (role === "initrd") await checkInitrd(this.d.files, path, file.realPath);
      if (role === "rootfs" || role === "work_seed") await checkExt4(role, path, this.d.disks, file.realPath);
    }

    const id = randomUUID();
    const finalDir = join(this.d.config.imagesDir, id);
    const tmpDir = `${finalDir}.partial`;
    await this.d.files.mkdir(tmpDir);
    try {
      const artifacts: Artifact[] = [];
      for (const [role, file] of pinned) {
        const dst = join(tmpDir, FILE_NAMES[role]);
        if (input.move?.includes(role)) await this.d.files.rename(file.realPath, dst);
        else await this.d.files.copy(file.readPath, dst);
        const sha256 = await this.d.files.sha256(dst);
        const size = (await this.d.files.stat(dst))?.size ?? 0;
        artifacts.push({ role, path: join(finalDir, FILE_NAMES[role]), sha256, sizeBytes: size });
      }
      await this.d.files.rename(tmpDir, finalDir);
      const services = input.services ?? [{ name: "ssh", port: 22 }];
      // Images with banger-agent push their readiness; older ones (and any image debugfs cannot read) are polled.
      const rootfs = artifacts.find((a) => a.role === "rootfs")!.path;
      const agent = await this.d.disks.hasFile(rootfs, GUEST_AGENT_PATH).catch(() => false);
      const image = this.d.store.insertImage({
        id,
        name: input.name,
        bootArgs: input.bootArgs?.trim() || DEFAULT_BOOT_ARGS,
        defaultVcpus: input.defaultVcpus,
        defaultMemoryMib: input.defaultMemoryMib,
        defaultWorkDiskGib: input.defaultWorkDiskGib,
        guest: { os: input.os ?? "linux", services, ...(agent ? { agent: true } : {}), ...(input.snapshot ? { snapshot: true } : {}) },
        artifacts,
        ...(input.build ? { build: input.build } : {}),
        ...(input.pulledFrom ? { pulledFrom: input.pulledFrom } : {}),
      });
      this.d.log.info({ image: image.name, id, artifacts: artifacts.map((a) => basename(a.path)) }, "image registered");
      return image;
    } catch (err) {
      await this.d.files.remove(tmpDir);
      await this.d.files.remove(finalDir);
      throw err;
    }
  }

  promote(nameOrAlias: string, alias: string): Image {
    validateName(alias, "alias");
    const target = this.get(nameOrAlias);
    if (this.d.store.listImages().some((i) => i.name === alias)) {
      throw new BangerError("IMAGE_EXISTS", `${alias} is an image name, not an alias`, { hint: "choose an alias that is not also an image name" });
    }
    if (target.status === "broken") {
      throw new BangerError("IMAGE_BROKEN", `image ${target.name} is broken (${target.statusDetail}); refusing to promote it`, {
        hint: "re-register the image from its build output",
      });
    }
    this.d.store.setAlias(alias, target.id);
    this.d.diskPool.refill(target);
    this.d.log.info({ image: target.name, alias }, "alias promoted");
    return this.get(target.name);
  }

  async remove(name: string): Promise<void> {
    const img = this.d.store.getImage(name);
    if (!img || img.name !== name) {
      if (img) {
        throw new BangerError("BAD_REQUEST", `${name} is an alias of ${img.name}; remove images by their own name`, {
          hint: `\`banger image rm ${img.name}\` (after pointing ${name} elsewhere with \`banger image promote\`)`,
        });
      }
      throw imageNotFound(name);
    }
    // Paused pool members are the pool's, not users of the image: they go with its snapshot.
    await this.d.vmPool.drop(img.id);
    const users = this.d.store.vmsUsingImage(img.id);
    if (users.length > 0) {
      throw new BangerError("IMAGE_IN_USE", `image ${name} is used by VM ${users.map((v) => v.name).join(", ")}`, {
        hint: "remove those VMs first with `banger vm rm`",
      });
    }
    if (img.aliases.length > 0) {
      throw new BangerError("IMAGE_IN_USE", `alias ${img.aliases.join(", ")} points at image ${name}`, {
        hint: `promote another image to ${img.aliases[0]} first (\`banger image promote <other> --as ${img.aliases[0]}\`)`,
      });
    }
    await this.d.diskPool.drop(img.id);
    this.d.store.deleteImage(img.id);
    await this.d.files.remove(join(this.d.config.imagesDir, img.id));
    this.d.log.info({ image: name }, "image removed");
  }

  /** Cheap start-up pass: every artifact exists with its recorded size (checksums come later, in the background). */
  async reconcileQuick(): Promise<void> {
    // A registration (or an image build's) cut short by a crash leaves its `<id>.partial` directory; nothing refers to it.
    for (const entry of await this.d.files.list(this.d.config.imagesDir).catch(() => [] as string[])) {
      if (!entry.endsWith(".partial")) continue;
      await this.d.files.remove(join(this.d.config.imagesDir, entry));
      this.d.log.warn({ dir: entry }, "removed an unfinished image directory");
    }
    for (const img of this.d.store.listImages()) {
      // So does an `image snapshot` cut short: its `snapshot.part-<id>` directory has no record and is never used.
      const imgDir = join(this.d.config.imagesDir, img.id);
      for (const entry of await this.d.files.list(imgDir).catch(() => [] as string[])) {
        if (!entry.startsWith("snapshot.part-")) continue;
        await this.d.files.remove(join(imgDir, entry));
        this.d.log.warn({ image: img.name, dir: entry }, "removed an unfinished snapshot directory");
      }
      let problem: string | undefined;
      for (const a of img.artifacts) {
        const st = await this.d.files.stat(a.path).catch(() => undefined);
        problem = !st
          ? `${a.role} file ${a.path} is missing`
          : st.size !== a.sizeBytes
            ? `${a.role} file ${a.path} is ${st.size} bytes, registered as ${a.sizeBytes}`
            : undefined;
        if (problem) break;
      }
      this.mark(img, problem);
    }
  }

  /** Full checksum pass; run in the background after start-up and by doctor. */
  async verifyChecksums(only?: Image): Promise<Map<string, string | undefined>> {
    const results = new Map<string, string | undefined>();
    for (const img of only ? [only] : this.d.store.listImages()) {
      let problem: string | undefined;
      for (const a of img.artifacts) {
        const st = await this.d.files.stat(a.path).catch(() => undefined);
        if (!st) {
          problem = `${a.role} file ${a.path} is missing`;
          break;
        }
        if (st.size !== a.sizeBytes || (await this.d.files.sha256(a.path)) !== a.sha256) {
          problem = `${a.role} checksum changed (${a.path})`;
          break;
        }
      }
      this.mark(img, problem);
      results.set(img.name, problem);
    }
    return results;
  }

  /** Fill the image's warm disk pool now and wait for it (benchmarks, scripts that want a warm first create). */
  async warm(nameOrAlias: string): Promise<Record<string, number>> {
    const img = this.get(nameOrAlias);
    this.d.diskPool.refill(img);
    await this.d.diskPool.settled();
    return this.d.diskPool.stats();
  }

  private mark(img: Image, problem: string | undefined): void {
    const status = problem ? "broken" : "ok";
    if (img.status === status && img.statusDetail === problem) return;
    this.d.store.setImageStatus(img.id, status, problem);
    this.d.log[problem ? "warn" : "info"]({ image: img.name, problem }, problem ? "image marked broken" : "image healthy again");
  }
}
