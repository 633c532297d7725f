import { readFile, writeFile } from "node:fs/promises";
import { join, posix } from "node:path";
import { BangerError } from "../../domain/errors.js";
import type { InjectedFile } from "../../ports/disks.js";
import type { Runner } from "../../ports/runner.js";

/** debugfs's command parser understands "..." quoting but has no escape for a quote itself. */
export function validateGuestPath(path: string): void {
  const bad =
    !path.startsWith("/") ||
    path === "/" ||
    path.endsWith("/") ||
    // eslint-disable-next-line no-control-regex -- control characters are exactly what this refuses
    /["\\\x00-\x1f\x7f]/.test(path) ||
    path.split("/").some((seg) => seg === "." || seg === "..");
  if (bad) {
    throw new BangerError(
      "DISK_FAILED",
      `cannot inject ${JSON.stringify(path)}: guest paths must be absolute, normalised file paths without quotes, backslashes or control characters`,
      {
        hint: "this is a bug in the caller; report it",
      },
    );
  }
}

const q = (s: string): string => `"${s}"`;

function parents(path: string): string[] {
  const out: string[] = [];
  let dir = posix.dirname(path);
  while (dir !== "/") {
    out.unshift(dir);
    dir = posix.dirname(dir);
  }
  return out;
}

/** Commands for `debugfs -w -f`: create parents, replace each file, then force mode and root ownership. */
export function debugfsInjectScript(files: InjectedFile[], sources: string[]): string {
  const lines: string[] = [];
  const made = new Set<string>();
  files.forEach((f, i) => {
    for (const dir of parents(f.path)) {
      if (made.has(dir)) continue;
      made.add(dir);
      lines.push(`mkdir ${q(dir)}`);
    }
    // `write` refuses an existing target, so remove it first.
    lines.push(`rm ${q(f.path)}`);
    lines.push(`write ${q(sources[i])} ${q(f.path)}`);
    lines.push(`set_inode_field ${q(f.path)} mode 0${(0o100000 | (f.mode & 0o7777)).toString(8)}`);
    lines.push(`set_inode_field ${q(f.path)} uid 0`);
    lines.push(`set_inode_field ${q(f.path)} gid 0`);
  });
  return lines.join("\n") + "\n";
}

// Expected noise: the banner, mkdir on an existing directory, rm of a file that was not there.
const BENIGN = [/^debugfs \d/, /^ext2fs_mkdir: Ext2 directory already exists/, /^mkdir: Ext2 directory already exists/, /^rm: File not found by ext2_lookup/];

/** debugfs prints failures on stderr but still exits 0; every non-benign line is an error. */
export function injectErrors(stderr: string): string[] {
  return stderr
    .split("\n")
    .map((l) => l.trim())
    .filter((l) => l && !BENIGN.some((re) => re.test(l)));
}

interface StatInfo {
  type: string;
  mode: number;
  uid: number;
  gid: number;
  size: number;
}

/** Parse `stat` sections from a `debugfs -f` transcript, keyed by the quoted path each followed. */
export function parseStats(stdout: string): Map<string, StatInfo> {
  const out = new Map<string, StatInfo>();
  for (const section of stdout.split(/^debugfs: /m).slice(1)) {
    const cmd = /^stat "([^"]*)"/.exec(section);
    if (!cmd) continue;
    const type = /Type:\s+(\S+)/.exec(section);
    const mode = /Mode:\s+([0-7]+)/.exec(section);
    const owner = /User:\s+(\d+)\s+Group:\s+(\d+)/.exec(section);
    const size = /\bSize:\s+(\d+)/.exec(section.slice(owner?.index ?? 0));
    if (!type || !mode || !owner || !size) continue;
    out.set(cmd[1], { type: type[1], mode: parseInt(mode[1], 8), uid: Number(owner[1]), gid: Number(owner[2]), size: Number(size[1]) });
  }
  return out;
}

/** Read every injected file back (stat + dump) and compare type, mode, owner and bytes. */
export async function checkInjected(runner: Runner, image: string, files: InjectedFile[], tmp: string, env: NodeJS.ProcessEnv): Promise<void> {
  const dumps = files.map((_, i) => join(tmp, `check${i}`));
  const script = files.map((f, i) => `stat ${q(f.path)}\ndump ${q(f.path)} ${q(dumps[i])}`).join("\n") + "\n";
  const scriptPath = join(tmp, "check-commands");
  await writeFile(scriptPath, script);
  const res = await runner.run("debugfs", ["-f", scriptPath, image], { timeoutMs: 60_000, env, allowFailure: true });
  const stats = parseStats(res.stdout);
  for (const [i, f] of files.entries()) {
    const st = stats.get(f.path);
    const want = Buffer.isBuffer(f.content) ? f.content : Buffer.from(f.content);
    let problem: string | undefined;
    if (!st) problem = "not found after writing";
    else if (st.type !== "regular") problem = `is a ${st.type}, not a regular file`;
    else if (st.mode !== (f.mode & 0o7777)) problem = `has mode ${st.mode.toString(8)}, wanted ${(f.mode & 0o7777).toString(8)}`;
    else if (st.uid !== 0 || st.gid !== 0) problem = `is owned by ${st.uid}:${st.gid}, wanted 0:0`;
    else if (st.size !== want.length) problem = `has ${st.size} bytes, wanted ${want.length}`;
    else {
      const got = await readFile(dumps[i]).catch(() => undefined);
      if (!got || !got.equals(want)) problem = "reads back different content";
    }
    if (problem) {
      throw new BangerError("DISK_FAILED", `injected ${f.path} in ${image} ${problem}`, {
        hint: "check that the image is ext4, has free space and inodes (`dumpe2fs -h`), and is not in use by a running VM",
      });
    }
  }
}
