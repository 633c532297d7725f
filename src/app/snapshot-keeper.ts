import type { Image } from "../domain/types.js";
import type { AppConfig } from "./deps.js";
import type { EventBus } from "./event-bus.js";
import { snapshotImage, type SnapshotDeps } from "./image-snapshot.js";
import { checkSnapshot } from "./snapshot-files.js";
import { readSnapshot, snapshotContext, snapshotDirOf } from "./snapshot-record.js";
import { vmmVersion } from "./snapshot-source.js";

// Keeps golden snapshots current without anyone asking: for every image that wants one (`snapshot =
// true` in the config, or registered with --snapshot) and has none that fits the VMM and shape a
// default create would use, it runs `image snapshot` in the background. One at a time, and never
// while a create is in flight: a golden boot under TCG takes a core for ten seconds or more, and a
// user's create must not wait behind it.

export type KeeperDeps = SnapshotDeps & { config: Pick<AppConfig, "autoSnapshot" | "vcpus" | "memoryMib"> };

/** How often a pass waiting for creates to finish looks again. */
const IDLE_POLL_MS = 2_000;

export class SnapshotKeeper {
  private running: Promise<void> | undefined;
  private again = false;
  private closed = false;
  /** Image id → the checksums a snapshot attempt failed with: not retried until the image changes. */
  private readonly failed = new Map<string, string>();
  private unsubscribe: (() => void) | undefined;

  constructor(private readonly d: KeeperDeps) {}

  wants(image: Image): boolean {
    return image.status === "ok" && (this.d.config.autoSnapshot || image.guest.snapshot === true);
  }

  /** Look at every image soon: at start, and whenever the image list changes (register, promote, build, rm). */
  start(bus?: EventBus): void {
    this.unsubscribe = bus?.subscribe((e) => {
      if (e.type === "images") this.kick();
    });
    this.kick();
  }

  kick(): void {
    if (this.closed) return;
    if (this.running) {
      this.again = true;
      return;
    }
    this.running = this.pass()
      .catch((e: Error) => this.d.log.warn({ stage: "snapshot-keeper", err: e.message }, "snapshot keeper pass failed"))
      .finally(() => {
        this.running = undefined;
        if (this.again) {
          this.again = false;
          this.kick();
        }
      });
  }

  /** Resolves when no pass is running (tests; shutdown). */
  async idle(): Promise<void> {
    while (this.running) await this.running;
  }

  close(): void {
    this.closed = true;
    this.unsubscribe?.();
  }

  /** Why this image needs a snapshot now, or undefined if it has one that fits (or cannot have one). */
  async need(image: Image): Promise<string | undefined> {
    const vmm = this.d.vmm(this.d.config.vmm);
    if (!this.d.snapshots(vmm.kind)) return undefined;
    const dir = snapshotDirOf(this.d.config.imagesDir, image.id);
    const snap = await readSnapshot(this.d.files, dir);
    if (!snap) return "it has none";
    const shape = { vcpus: image.defaultVcpus ?? this.d.config.vcpus, memoryMib: image.defaultMemoryMib ?? this.d.config.memoryMib };
    const verdict = await checkSnapshot(this.d.files, snap.record, dir, snapshotContext(image, vmm.kind, await vmmVersion(vmm), shape), { deep: false });
    return verdict.usable ? undefined : verdict.reason;
  }

  private async pass(): Promise<void> {
    for (const listed of this.d.store.listImages()) {
      if (this.closed) return;
      if (!this.wants(listed)) continue;
      const why = await this.need(listed);
      if (!why) continue;
      const mark = JSON.stringify(listed.artifacts.map((a) => a.sha256));
      if (this.failed.get(listed.id) === mark) continue;
      while (this.d.ops.inFlight("create").length > 0) {
        if (this.closed) return;
        await new Promise((r) => setTimeout(r, IDLE_POLL_MS).unref());
      }
      // Re-read: the image may have gone or changed while this pass waited.
      const image = this.d.store.getImage(listed.name);
      if (!image || !this.wants(image) || !(await this.need(image))) continue;
      const log = this.d.log.child({ stage: "snapshot-keeper", image: image.name });
      log.info({ why }, "taking the image's golden snapshot");
      try {
        const s = await snapshotImage(this.d, image.name);
        this.failed.delete(image.id);
        log.info({ snapshot: s.id }, "golden snapshot taken");
      } catch (e) {
        this.failed.set(image.id, mark);
        log.warn({ err: (e as Error).message }, "golden snapshot failed; not retried until the image changes (`banger image snapshot` retries by hand)");
      }
    }
  }
}
