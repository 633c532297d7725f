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
/**
 * A file opened for reading on the caller's behalf, pinned by its descriptor: `readPath` names
 * that open file (`/proc/<pid>/fd/<n>`), so checks and copies read exactly the inode whose
 * `realPath` was vetted, whatever happens to the path meanwhile.
 */
export interface PinnedFile {
  /** Where the opened inode lives, read back from the descriptor (symlinks resolved). */
  realPath: string;
  readPath: string;
  info: FileInfo;
  close(): Promise<void>;
}

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
  /** The path with every symlink resolved; undefined when it does not exist. */
  realpath(path: string): Promise<string | undefined>;
  /**
   * Open a caller-named file for reading without following a final symlink (O_NOFOLLOW on the
   * resolved path) and without blocking on a FIFO. Undefined when it does not exist.
   */
  pin(path: string): Promise<PinnedFile | undefined>;
}
