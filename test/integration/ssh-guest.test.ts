import { spawn, execFileSync, type ChildProcess } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdir, mkdtemp, readFile, rm, writeFile, chmod } from "node:fs/promises";
import { createServer, type Server } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import pino from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { SshGuest } from "../../src/adapters/ssh/guest.js";
import { generateHostKey, knownHostsLine } from "../../src/adapters/ssh/keys.js";
import { BangerError } from "../../src/domain/errors.js";
import type { SshTarget } from "../../src/ports/guest.js";

const SSHD = "/usr/sbin/sshd";
const isRoot = process.getuid?.() === 0;
const haveTools =
  existsSync(SSHD) &&
  (() => {
    try {
      execFileSync("sh", ["-c", "command -v ssh && command -v ssh-keygen"], { stdio: "ignore" });
      return true;
    } catch {
      return false;
    }
  })();
const skipReason = !isRoot ? " (skipped: needs root to run sshd)" : !haveTools ? " (skipped: openssh-server/client not installed)" : "";

async function freePort(): Promise<number> {
  const srv = createServer();
  await new Promise<void>((r) => srv.listen(0, "127.0.0.1", r));
  const port = (srv.address() as { port: number }).port;
  await new Promise((r) => srv.close(r));
  return port;
}

async function expectNotReady(p: Promise<unknown>, phase: RegExp): Promise<BangerError> {
  const e = await p.then(
    () => undefined,
    (err: unknown) => err,
  );
  expect(e).toBeInstanceOf(BangerError);
  const be = e as BangerError;
  expect(be.code).toBe("GUEST_NOT_READY");
  expect(be.message).toMatch(phase);
  expect(be.hint).toBeTruthy();
  return be;
}

describe.skipIf(skipReason !== "")(`SshGuest against a real sshd on 127.0.0.1${skipReason}`, () => {
  const guest = new SshGuest({ log: pino({ level: "silent" }) });
  let dir: string;
  let port: number;
  let sshd: ChildProcess | undefined;
  let sshdLog = "";
  let madePrivsepDir = false;
  let target: SshTarget;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "banger-ssh-"));
    // sshd running as root insists on its privilege separation directory.
    if (!existsSync("/run/sshd")) {
      await mkdir("/run/sshd", { mode: 0o755 });
      madePrivsepDir = true;
    }
    const host = await generateHostKey(dir);
    await writeFile(join(dir, "host_key"), host.privateKey, { mode: 0o600 });
    execFileSync("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-f", join(dir, "client")]);
    execFileSync("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-f", join(dir, "stranger")]);
    await writeFile(join(dir, "authorized_keys"), await readFile(join(dir, "client.pub")));
    await chmod(join(dir, "authorized_keys"), 0o600);
    port = await freePort();
    await writeFile(join(dir, "known_hosts"), knownHostsLine("127.0.0.1", host.publicKey, port) + "\n");
    const other = await generateHostKey(dir);
    await writeFile(join(dir, "known_hosts_wrong"), knownHostsLine("127.0.0.1", other.publicKey, port) + "\n");
    await writeFile(
      join(dir, "sshd_config"),
      [
        `Port ${port}`,
        "ListenAddress 127.0.0.1",
        `HostKey ${join(dir, "host_key")}`,
        `AuthorizedKeysFile ${join(dir, "authorized_keys")}`,
        "PidFile none",
        "UsePAM no",
        "PermitRootLogin prohibit-password",
        "PasswordAuthentication no",
        "KbdInteractiveAuthentication no",
        "StrictModes no",
        "",
      ].join("\n"),
    );
    target = { host: "127.0.0.1", port, user: "root", keyPath: join(dir, "client"), knownHostsPath: join(dir, "known_hosts") };
  });

  afterAll(async () => {
    if (sshd?.pid && sshd.exitCode === null) {
      sshd.kill("SIGTERM");
      await new Promise((r) => sshd!.once("exit", r));
    }
    if (madePrivsepDir) await rm("/run/sshd", { recursive: true, force: true });
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it("reports 'no TCP' while nothing listens yet", async () => {
    await expectNotReady(guest.waitSsh(target, 800), /last failure: no TCP/);
  });

  it("becomes ready once sshd starts later, within the wait", async () => {
    const waiting = guest.waitSsh(target, 20_000);
    await sleep(500);
    sshd = spawn(SSHD, ["-D", "-e", "-f", join(dir, "sshd_config")], { stdio: ["ignore", "ignore", "pipe"] });
    sshd.stderr!.setEncoding("utf8").on("data", (d: string) => (sshdLog += d));
    await expect(
      waiting.catch((e: Error) => {
        throw new Error(`${e.message}\nsshd: ${sshdLog}`);
      }),
    ).resolves.toBeUndefined();
  });

  it("runs commands with exec and returns code and output", async () => {
    const ok = await guest.exec(target, "echo hello; echo err >&2", 10_000);
    expect(ok).toEqual({ code: 0, stdout: "hello\n", stderr: "err\n" });
    const bad = await guest.exec(target, "exit 7", 10_000);
    expect(bad.code).toBe(7);
  });

  it("exec enforces its timeout", async () => {
    const e = await guest.exec(target, "sleep 3", 1_000).catch((err: unknown) => err);
    expect((e as BangerError).code).toBe("TIMEOUT");
  });

  it("names 'auth failed' when the key is not authorized", async () => {
    const be = await expectNotReady(guest.waitSsh({ ...target, keyPath: join(dir, "stranger") }, 2_000), /last failure: auth failed/);
    expect(be.message).toMatch(/Permission denied/);
  });

  it("names 'host key mismatch' for a wrong known_hosts entry and gives up early", async () => {
    await expectNotReady(guest.waitSsh({ ...target, knownHostsPath: join(dir, "known_hosts_wrong") }, 60_000), /last failure: host key mismatch/);
  });

  it("names 'host key mismatch' when known_hosts has no entry (never prompts)", async () => {
    await writeFile(join(dir, "known_hosts_empty"), "");
    await expectNotReady(guest.waitSsh({ ...target, knownHostsPath: join(dir, "known_hosts_empty") }, 2_000), /host key mismatch/);
  });

  it("names 'no banner' when the port is not an SSH server", async () => {
    const srv: Server = createServer((s) => s.end("HTTP/1.1 400 Bad Request\r\n\r\n"));
    await new Promise<void>((r) => srv.listen(0, "127.0.0.1", r));
    const p = (srv.address() as { port: number }).port;
    try {
      await expectNotReady(guest.waitSsh({ ...target, port: p }, 800), /last failure: no banner: .*not an SSH banner/);
    } finally {
      await new Promise((r) => srv.close(r));
    }
  });

  it("waitPort resolves on an open port and times out on a closed one", async () => {
    await guest.waitPort("127.0.0.1", port, 5_000);
    const closed = await freePort();
    const e = await guest.waitPort("127.0.0.1", closed, 600).catch((err: unknown) => err);
    expect((e as BangerError).code).toBe("GUEST_NOT_READY");
    expect((e as BangerError).message).toMatch(/ECONNREFUSED/);
  });

  it("stops waiting as soon as the signal aborts", async () => {
    const closed = await freePort();
    const ac = new AbortController();
    setTimeout(() => ac.abort(new Error("create cancelled")), 300);
    await expect(guest.waitSsh({ ...target, port: closed }, 60_000, ac.signal)).rejects.toThrow("create cancelled");
    const ac2 = new AbortController();
    setTimeout(() => ac2.abort(new Error("cancelled too")), 300);
    await expect(guest.waitPort("127.0.0.1", closed, 60_000, ac2.signal)).rejects.toThrow("cancelled too");
  });
});
