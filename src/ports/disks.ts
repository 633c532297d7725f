export interface InjectedFile {
  /** Absolute path inside the guest filesystem. */
  path: string;
  content: string | Buffer;
  /** e.g. 0o600 */
  mode: number;
}

export interface Disks {
  /** Per-VM copy of an image rootfs: reflink where possible, sparse copy otherwise. */
  cloneRootfs(src: string, dst: string): Promise<void>;
  /** Work disk of sizeGib: clone + grow the seed when given, else a fresh empty ext4. */
  makeWorkDisk(dst: string, sizeGib: number, seed?: string): Promise<void>;
  /** Write files into an ext4 image without mounting it (debugfs). Parent dirs are created. */
  inject(image: string, files: InjectedFile[]): Promise<void>;
  /** Whether a regular file exists at this absolute path inside an ext4 image (debugfs, read-only). */
  hasFile(image: string, path: string): Promise<boolean>;
  /** ext4 superblock check; returns a problem description or undefined. */
  ext4Problem(path: string): Promise<string | undefined>;
}
