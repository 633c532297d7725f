/** What an image build does to ext4 images beyond a create's disks (src/adapters/disk/build-disks.ts). */
export interface BuildDisks {
  /** Grow the file to `bytes` and the filesystem with it (resize2fs), before the guest boots. */
  growTo(image: string, bytes: number): Promise<void>;
  /** `e2fsck -f -y`: what it found; throws when the filesystem is left with errors (exit code 4 or more). */
  check(image: string): Promise<string>;
  /** Shrink the filesystem to its minimum (resize2fs -M) and the file with it; returns the new size in bytes. */
  shrinkToMin(image: string): Promise<number>;
  /** Delete files (a missing one is fine) and empty others, without mounting (debugfs). */
  scrub(image: string, opts: { remove: string[]; empty: { path: string; mode: number }[] }): Promise<void>;
  /** Size of the file in bytes. */
  size(image: string): Promise<number>;
}
