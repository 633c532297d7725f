import { execFileSync } from "node:child_process";
import { chmod, mkdir, mkdtemp, readFile, rm, stat, symlink, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { sshArgs } from "../../src/adapters/ssh/args.js";
import { checkKey, ensureDefaultKey, generateHostKey, knownHostsLine } from "../../src/adapters/ssh/keys.js";
import { BangerError } from "../../src/domain/errors.js";

let hasKeygen = true;
try {
  execFileSync("sh", ["-c", "command -v ssh-keygen"], { stdio: "ignore" });
} catch {
  hasKeygen = false;
}

async function codeOf(p: Promise<unknown>): Promise<BangerError> {
  const e = await p.then(
    () => undefined,
    (err: unknown) => err,
  );
  expect(e).toBeInstanceOf(BangerError);
  return e as BangerError;
}

describe("pure helpers", () => {
  it("knownHostsLine uses the bare host on 22 and [host]:port otherwise, dropping the comment", () => {
    expect(knownHostsLine("172.30.0.5", "ssh-ed25519 AAAAC3Nza banger-host")).toBe("172.30.0.5 ssh-ed25519 AAAAC3Nza");
    expect(knownHostsLine("127.0.0.1", "ssh-ed25519 AAAAC3Nza\n", 2222)).toBe("[127.0.0.1]:2222 ssh-ed25519 AAAAC3Nza");
    expect(() => knownHostsLine("h", "garbage")).toThrow(BangerError);
  });

  it("sshArgs pins key, known_hosts and strict checking, then the destination and command", () => {
    const args = sshArgs({ host: "172.30.0.5", user: "root", keyPath: "/k/id", knownHostsPath: "/vm/known_hosts" }, ["uname", "-a"]);
    expect(args.slice(0, 4)).toEqual(["-i", "/k/id", "-p", "22"]);
    for (const o of [
      "BatchMode=yes",
      "StrictHostKeyChecking=yes",
      "UserKnownHostsFile=/vm/known_hosts",
      "IdentitiesOnly=yes",
      "GlobalKnownHostsFile=/dev/null",
    ]) {
      expect(args[args.indexOf(o) - 1]).toBe("-o");
    }
    expect(args.slice(-3)).toEqual(["root@172.30.0.5", "uname", "-a"]);
  });
});

describe.skipIf(!hasKeygen)(`key files${hasKeygen ? "" : " (skipped: ssh-keygen not installed)"}`, () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "banger-keys-"));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it("ensureDefaultKey creates a 0600 ed25519 key in a 0700 dir, then is idempotent", async () => {
    const key = join(dir, "managed", "ssh", "id_ed25519");
    const pub = await ensureDefaultKey(key);
    expect(pub).toMatch(/^ssh-ed25519 \S+ banger$/);
    expect((await stat(key)).mode & 0o777).toBe(0o600);
    expect((await stat(join(dir, "managed", "ssh"))).mode & 0o777).toBe(0o700);
    const before = await readFile(key, "utf8");
    await chmod(key, 0o644);
    expect(await ensureDefaultKey(key)).toBe(pub);
    expect(await readFile(key, "utf8")).toBe(before);
    expect((await stat(key)).mode & 0o777).toBe(0o600);
  });

  it("checkKey: missing, not a file, dangling symlink, too open", async () => {
    expect((await codeOf(checkKey(join(dir, "absent")))).code).toBe("SSH_KEY");
    const sub = join(dir, "adir");
    await mkdir(sub);
    expect((await codeOf(checkKey(sub))).message).toMatch(/not a regular file/);
    await symlink(join(dir, "nowhere"), join(dir, "dangling"));
    expect((await codeOf(checkKey(join(dir, "dangling")))).message).toMatch(/dangling/);

    const key = join(dir, "open_key");
    execFileSync("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-f", key]);
    await chmod(key, 0o640);
    const e = await codeOf(checkKey(key));
    expect(e.code).toBe("SSH_KEY");
    expect(e.message).toMatch(/mode 640/);
    expect(e.hint).toBe(`run \`chmod 600 ${key}\``);
  });

  it("checkKey derives a missing .pub and rejects a passphrase-protected key", async () => {
    const key = join(dir, "nopub");
    execFileSync("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-C", "c", "-f", key]);
    const expected = (await readFile(`${key}.pub`, "utf8")).trim().split(" ").slice(0, 2).join(" ");
    await rm(`${key}.pub`);
    expect((await checkKey(key)).startsWith(expected)).toBe(true);
    expect((await readFile(`${key}.pub`, "utf8")).startsWith(expected)).toBe(true);

    const locked = join(dir, "locked");
    execFileSync("ssh-keygen", ["-q", "-t", "ed25519", "-N", "secret", "-f", locked]);
    await rm(`${locked}.pub`);
    const e = await codeOf(checkKey(locked));
    expect(e.code).toBe("SSH_KEY");
    expect(e.hint).toMatch(/unencrypted/);
  });

  it("generateHostKey returns a matching ed25519 pair and leaves no files behind", async () => {
    const where = join(dir, "hk");
    const { privateKey, publicKey } = await generateHostKey(where);
    expect(privateKey).toMatch(/BEGIN OPENSSH PRIVATE KEY/);
    expect(publicKey).toMatch(/^ssh-ed25519 \S+/);
    const priv = join(dir, "hk-check");
    await writeFile(priv, privateKey, { mode: 0o600 });
    const derived = execFileSync("ssh-keygen", ["-y", "-f", priv], { encoding: "utf8" }).trim().split(" ").slice(0, 2).join(" ");
    expect(publicKey.split(" ").slice(0, 2).join(" ")).toBe(derived);
    expect(execFileSync("ls", ["-A", where], { encoding: "utf8" }).trim()).toBe("");
  });
});
