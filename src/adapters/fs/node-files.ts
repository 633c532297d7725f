import { constants, type Stats } from "node:fs";
import { mkdir, open, readdir, readFile, readlink, realpath, rename, rm, stat, writeFile } from "node:fs/promises";
import { BangerError, errnoError } from "../../domain/errors.js";
import type { FileInfo, Files, PinnedFile } from "../../ports/files.js";

const info = (st: Stats): FileInfo => ({ size: st.size, allocatedBytes: st.blocks * 512, isFile: st.isFile(), isDirectory: st.isDirectory() });
const missing = (e: NodeJS.ErrnoException) => {
  if (e.code === "ENOENT" || e.code === "ENOTDIR") return undefined;
  throw e;
};

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
      return st && info(st);
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

  realpath(path: string): Promise<string | undefined> {
    return this.edge("resolving", path, () => realpath(path).catch(missing));
  }

  pin(path: string): Promise<PinnedFile | undefined> {
    return this.edge("opening", path, async () => {
      const real = await realpath(path).catch(missing);
      if (real === undefined) return undefined;
      // O_NOFOLLOW: a symlink swapped in after realpath fails (ELOOP) instead of being followed;
      // O_NONBLOCK: a FIFO cannot hang the daemon.
      const fh = await open(real, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK | constants.O_NOCTTY).catch((e: NodeJS.ErrnoException) => {
        if (e.code !== "ELOOP") throw e;
        throw new BangerError("BAD_REQUEST", `${path} was replaced by a symlink while banger opened it`, {
          hint: "pass the file itself, and leave it alone while it is registered",
        });
      });
      try {
        const fdPath = `/proc/${process.pid}/fd/${fh.fd}`;
        // What was really opened, not what the path said a moment before.
        const realPath = await readlink(fdPath);
        return { realPath, readPath: fdPath, info: info(await fh.stat()), close: () => fh.close() };
      } catch (e) {
        await fh.close();
        throw e;
      }
    });
  }
}
