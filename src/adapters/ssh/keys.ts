import { chmod, lstat, mkdir, mkdtemp, readFile, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { BangerError, isCode } from "../../domain/errors.js";
import { ExecRunner } from "../exec/runner.js";

const KEYGEN_TIMEOUT_MS = 15_000;

function keyError(message: string, hint: string): BangerError {
  return new BangerError("SSH_KEY", message, { hint });
}

const runner = new ExecRunner();

async function keygen(args: string[]): Promise<string> {
  let res;
  try {
    res = await runner.run("ssh-keygen", args, { timeoutMs: KEYGEN_TIMEOUT_MS, allowFailure: true });
  } catch (e) {
    if (isCode(e, "TIMEOUT"))
      throw keyError(`ssh-keygen ${args.join(" ")} did not finish within ${KEYGEN_TIMEOUT_MS} ms`, "check that the key has no passphrase");
    throw keyError((e as Error).message, "install openssh-client");
  }
  if (res.code !== 0) throw keyError(`ssh-keygen ${args.join(" ")} failed: ${res.stderr.trim() || `exit ${res.code}`}`, "check the key file and its directory");
  return res.stdout;
}

/** Make sure <path>.pub exists, deriving it from the private key when missing. Returns the public key line. */
async function ensurePub(path: string): Promise<string> {
  const pubPath = `${path}.pub`;
  try {
    return (await readFile(pubPath, "utf8")).trim();
  } catch {
    // derive below
  }
  let pub: string;
  try {
    pub = (await keygen(["-y", "-f", path])).trim();
  } catch (e) {
    throw keyError(
      `cannot derive the public key of ${path}: ${(e as Error).message}`,
      'banger needs an unencrypted private key; create one with `ssh-keygen -t ed25519 -N "" -f <path>`',
    );
  }
  await writeFile(pubPath, pub + "\n", { mode: 0o644 });
  return pub;
}

/**
 * The private key is a regular file readable only by its owner and has a
 * public half. ssh refuses group/world-readable keys, so catch that first.
 * Returns the public key line.
 */
export async function checkKey(path: string): Promise<string> {
  let st;
  try {
    st = await lstat(path);
  } catch {
    throw keyError(
      `SSH key ${path} does not exist`,
      'create it with `ssh-keygen -t ed25519 -N "" -f ' + path + "` or unset ssh_key to use banger's managed key",
    );
  }
  if (st.isSymbolicLink()) {
    try {
      st = await stat(path);
    } catch {
      throw keyError(`SSH key ${path} is a dangling symlink`, "point ssh_key at the key file itself");
    }
  }
  if (!st.isFile()) throw keyError(`SSH key ${path} is not a regular file`, "point ssh_key at the private key file");
  if ((st.mode & 0o077) !== 0) {
    throw keyError(`SSH key ${path} has mode ${(st.mode & 0o777).toString(8)}; ssh refuses keys others can read`, `run \`chmod 600 ${path}\``);
  }
  return ensurePub(path);
}

/** banger's managed key: created on first use (ed25519, no passphrase), permissions enforced every time. Returns the public key line. */
export async function ensureDefaultKey(path: string): Promise<string> {
  const dir = dirname(path);
  await mkdir(dir, { recursive: true, mode: 0o700 });
  await chmod(dir, 0o700);
  let exists = true;
  try {
    await lstat(path);
  } catch {
    exists = false;
  }
  if (!exists) {
    await rm(`${path}.pub`, { force: true });
    await keygen(["-q", "-t", "ed25519", "-N", "", "-C", "banger", "-f", path]);
  }
  await chmod(path, 0o600);
  return checkKey(path);
}

/**
 * A fresh ed25519 host key pair for one VM. banger writes the private half
 * into the guest and the public half into the VM's known_hosts, so the first
 * connection is already verified (no trust-on-first-use).
 */
export async function generateHostKey(dir?: string): Promise<{ privateKey: string; publicKey: string }> {
  const base = dir ?? tmpdir();
  await mkdir(base, { recursive: true });
  const tmp = await mkdtemp(join(base, "hostkey-"));
  try {
    const key = join(tmp, "ssh_host_ed25519_key");
    await keygen(["-q", "-t", "ed25519", "-N", "", "-C", "banger-host", "-f", key]);
    const [privateKey, publicKey] = await Promise.all([readFile(key, "utf8"), readFile(`${key}.pub`, "utf8")]);
    return { privateKey, publicKey: publicKey.trim() };
  } finally {
    await rm(tmp, { recursive: true, force: true });
  }
}

export { knownHostsLine } from "../../domain/known-hosts.js";
