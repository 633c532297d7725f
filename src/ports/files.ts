export interface FileInfo {
  size: number;
  /** Blocks actually allocated: what a sparse or reflinked disk really holds. */
  allocatedBytes: number;
  isFile: boolean;
  isDirectory: boolean;
}

/**
 * The state directory's files as the use cases see them: VM dirs, the image
 * store, warm pool sets. Failures arrive classified (DISK_FAILED naming the
 * path and the fix, HOST_RESOURCES), never as a bare errno.
 */
export interface Files {
  mkdir(path: string): Promise<void>;
  /** Recursive; a missing path is fine. */
  remove(path: string): Promise<void>;
  rename(from: string, to: string): Promise<void>;
  /** Entry names; [] when the directory does not exist. */
  list(dir: string): Promise<string[]>;
  /** Undefined when the path does not exist. */
  stat(path: string): Promise<FileInfo | undefined>;
  readText(path: string): Promise<string>;
  writeText(path: string, content: string, mode?: number): Promise<void>;
  /** Up to `bytes` from the start of the file. */
  readHead(path: string, bytes: number): Promise<Buffer>;
  /** A private copy: reflink where the file system can, sparse otherwise. */
  copy(src: string, dst: string): Promise<void>;
  sha256(path: string): Promise<string>;
}
