import { BangerError } from "../domain/errors.js";
import type { ArtifactRole } from "../domain/types.js";
import type { Disks } from "../ports/disks.js";
import type { FileInfo, Files } from "../ports/files.js";

const ROLE_FLAG: Record<ArtifactRole, string> = {
  kernel: "--kernel",
  initrd: "--initrd",
  rootfs: "--rootfs",
  work_seed: "--work-seed",
};

function invalid(role: ArtifactRole, path: string, problem: string, hint: string): BangerError {
  return new BangerError("INVALID_ARTIFACT", `${ROLE_FLAG[role]} ${path}: ${problem}`, { hint });
}

/** A regular file, not empty (`st` from the opened descriptor). */
export function checkPlainFile(role: ArtifactRole, path: string, st: FileInfo): number {
  if (!st.isFile) throw invalid(role, path, "is not a regular file", "pass the file itself, not a directory or device");
  if (st.size === 0) throw invalid(role, path, "is empty", "the artifact was not built completely; rebuild it");
  return st.size;
}

/**
 * Firecracker and our QEMU driver both load the kernel as an ELF (PVH entry);
 * a compressed bzImage would boot far slower or not at all, so refuse it here.
 */
export async function checkKernel(files: Files, readPath: string, path = readPath): Promise<void> {
  const head = await files.readHead(readPath, 0x210);
  if (head.length >= 0x206 && head.subarray(0x202, 0x206).toString("latin1") === "HdrS") {
    throw invalid(
      "kernel",
      path,
      "is a compressed bzImage, not an ELF vmlinux",
      "extract the ELF with `bash images/lib/kernel.sh OUTDIR` (Debian cloud kernels) or the kernel tree's scripts/extract-vmlinux",
    );
  }
  if (head.length < 20 || head.readUInt32BE(0) !== 0x7f454c46) {
    throw invalid("kernel", path, "is not an ELF file", "pass an uncompressed vmlinux (ELF x86-64 executable)");
  }
  const elfClass = head[4];
  const machine = head.readUInt16LE(18);
  const type = head.readUInt16LE(16);
  if (elfClass !== 2 || machine !== 0x3e) {
    throw invalid("kernel", path, "is an ELF but not x86-64", "use a vmlinux built for x86_64");
  }
  if (type !== 2) {
    throw invalid("kernel", path, "is an ELF but not an executable (e.g. a module or object file)", "pass the kernel's vmlinux");
  }
}

export async function checkInitrd(files: Files, readPath: string, path = readPath): Promise<void> {
  const head = await files.readHead(readPath, 6);
  const gzip = head[0] === 0x1f && head[1] === 0x8b;
  const cpio = head.toString("latin1").startsWith("07070");
  const zstd = head.readUInt32LE(0) === 0xfd2fb528;
  const xz = head.subarray(0, 6).equals(Buffer.from([0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00]));
  const lz4 = head.readUInt32LE(0) === 0x184c2102 || head.readUInt32LE(0) === 0x184d2204;
  if (!(gzip || cpio || zstd || xz || lz4)) {
    throw invalid("initrd", path, "is not a cpio archive (plain, gzip, zstd, xz or lz4)", "pass an initramfs built with `cpio -H newc`");
  }
}

export async function checkExt4(role: ArtifactRole, readPath: string, disks: Disks, path = readPath): Promise<void> {
  const problem = await disks.ext4Problem(readPath);
  if (problem) throw invalid(role, path, `is not an ext4 filesystem (${problem})`, "build it with `mkfs.ext4 -d <dir> <file>`");
}
