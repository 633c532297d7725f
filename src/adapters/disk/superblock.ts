import { open, stat } from "node:fs/promises";

// ext2/3/4 superblock: 1024 bytes in; offsets below are relative to it.
const SB_OFFSET = 1024;
const SB_SIZE = 1024;
const MAGIC = 0xef53;
const OFF_BLOCKS_LO = 4;
const OFF_LOG_BLOCK_SIZE = 24;
const OFF_MAGIC = 56;
const OFF_FEATURE_INCOMPAT = 96;
const OFF_BLOCKS_HI = 0x150;
const INCOMPAT_64BIT = 0x80;

/** Reads the superblock in-process; returns a description of what is wrong, or undefined for a plausible ext filesystem. */
export async function ext4Problem(path: string): Promise<string | undefined> {
  let st;
  try {
    st = await stat(path);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    return code === "ENOENT" ? "file does not exist" : `cannot stat: ${code ?? String(e)}`;
  }
  if (!st.isFile()) return "not a regular file";
  if (st.size === 0) return "empty";
  if (st.size < SB_OFFSET + SB_SIZE) return `too small (${st.size} bytes) to hold an ext4 superblock`;
  const sb = Buffer.alloc(SB_SIZE);
  let fh;
  try {
    fh = await open(path, "r");
    await fh.read(sb, 0, SB_SIZE, SB_OFFSET);
  } catch (e) {
    return `cannot read: ${(e as NodeJS.ErrnoException).code ?? String(e)}`;
  } finally {
    await fh?.close();
  }
  const magic = sb.readUInt16LE(OFF_MAGIC);
  if (magic !== MAGIC) return `no ext4 superblock (magic 0x${magic.toString(16).padStart(4, "0")}, expected 0xef53)`;
  const logBlock = sb.readUInt32LE(OFF_LOG_BLOCK_SIZE);
  if (logBlock > 6) return `superblock has an impossible block size (log ${logBlock})`;
  const blockSize = 1024 << logBlock;
  let blocks = sb.readUInt32LE(OFF_BLOCKS_LO);
  if (sb.readUInt32LE(OFF_FEATURE_INCOMPAT) & INCOMPAT_64BIT) blocks += sb.readUInt32LE(OFF_BLOCKS_HI) * 2 ** 32;
  const fsBytes = blocks * blockSize;
  if (fsBytes > st.size) return `filesystem claims ${fsBytes} bytes but the file has ${st.size} (truncated copy?)`;
  return undefined;
}
