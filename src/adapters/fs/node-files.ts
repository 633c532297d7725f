import { mkdir, open, readdir, readFile, rename, rm, stat, writeFile } from "node:fs/promises";
import { errnoError } from "../../domain/errors.js";
import type { FileInfo, Files } from "../../ports/files.js";

export interface NodeFilesOptions {
  /** The disk adapter's copy (cp --reflink=auto --sparse=always). */
  copy(src: string, dst: string): Promise<void>;
  sha256(path: string): Promise<string>;
}

/**
 * Files through node:fs. Errors are classified here, at the edge, with the
 * path and what was being done, so a full disk reads "no space left … free
 * space on the file system holding <path>" instead of a bare ENOSPC.
 */
export class NodeFiles implements Files {
  constructor(private readonly opts: NodeFilesOptions) {}

  private async edge<T>(action: string, path: string, fn: () => Promise<T>): Promise<T> {
    try {
      return await fn();
    } catch (e) {
      throw errnoError(e, { path, action });
    }
  }

  mkdir(path: string): Promise<void> {
    return this.edge("creating a directory", path, async () => {
      await mkdir(path, { recursive: true });
    });
  }

  remove(path: string): Promise<void> {
    return this.edge("removing", path, () => rm(path, { recursive: true, force: true }));
  }

  rename(from: string, to: string): Promise<void> {
    return this.edge(`moving ${from}`, to, () => rename(from, to));
  }

  list(dir: string): Promise<string[]> {
    return this.edge("listing", dir, () =>
      readdir(dir).catch((e: NodeJS.ErrnoException) => {
        if (e.code === "ENOENT") return [];
        throw e;
      }),
    );
  }

  stat(path: string): Promise<FileInfo | undefined> {
    return this.edge("reading the size of", path, async () => {
      const st = await stat(path).catch((e: NodeJS.ErrnoException) => {
        if (e.code === "ENOENT") return undefined;
        throw e;
      });
      return st && { size: st.size, allocatedBytes: st.blocks * 512, isFile: st.isFile(), isDirectory: st.isDirectory() };
    });
  }

  readText(path: string): Promise<string> {
    return this.edge("reading", path, () => readFile(path, "utf8"));
  }

  writeText(path: string, content: string, mode?: number): Promise<void> {
    return this.edge("writing", path, () => writeFile(path, content, mode === undefined ? undefined : { mode }));
  }

  readHead(path: string, bytes: number): Promise<Buffer> {
    return this.edge("reading", path, async () => {
      const fh = await open(path, "r");
      try {
        const buf = Buffer.alloc(bytes);
        const { bytesRead } = await fh.read(buf, 0, bytes, 0);
        return buf.subarray(0, bytesRead);
      } finally {
        await fh.close();
      }
    });
  }

  copy(src: string, dst: string): Promise<void> {
    return this.edge(`copying ${src}`, dst, () => this.opts.copy(src, dst));
  }

  sha256(path: string): Promise<string> {
    return this.edge("checksumming", path, () => this.opts.sha256(path));
  }
}
