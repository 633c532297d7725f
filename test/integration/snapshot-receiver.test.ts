import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { describe, expect, it } from "vitest";
import { streamReceiver } from "../../src/adapters/qemu/snapshot.js";

// The migration socket of `image snapshot`, as a QEMU running as vmm_user meets it: that user must
// be able to connect and write the stream; nobody else may even reach the socket.
const NOBODY = { uid: 65534, gid: 65534 };
const root = process.getuid?.() === 0;
const socat = (() => {
  try {
    execFileSync("socat", ["-V"], { stdio: "ignore" });
    return true;
  } catch {
    return false;
  }
})();
const skip = !root ? "needs root (chown, setpriv)" : !socat ? "needs socat (apt-get install socat)" : "";

function sendAs(uid: number, sock: string, data: string): boolean {
  try {
    execFileSync("setpriv", [`--reuid=${uid}`, `--regid=${uid}`, "--clear-groups", "socat", "-u", "-", `UNIX-CONNECT:${sock}`], {
      input: data,
      stdio: ["pipe", "ignore", "ignore"],
    });
    return true;
  } catch {
    return false;
  }
}

describe.skipIf(skip)(`snapshot migration receiver with a VMM user${skip ? ` (skipped: ${skip})` : ""}`, () => {
  it("the VMM user's stream lands in the file; another unprivileged user cannot connect", async () => {
    const dir = mkdtempSync(join(tmpdir(), "recv-"));
    const file = join(dir, "state.mig");
    const r = await streamReceiver(file, { owner: NOBODY });
    try {
      const sock = r.uri.replace(/^unix:/, "");
      expect(statSync(dirname(sock)).uid).toBe(NOBODY.uid);
      expect(statSync(dirname(sock)).mode & 0o777).toBe(0o700);
      expect(statSync(sock).uid).toBe(NOBODY.uid);
      // Another non-root account: the 0700 directory stops it before the socket.
      expect(sendAs(65533, sock, "intruder")).toBe(false);
      expect(sendAs(NOBODY.uid, sock, "QEVM stream bytes")).toBe(true);
      await r.written;
      expect(readFileSync(file, "utf8")).toBe("QEVM stream bytes");
    } finally {
      await r.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("without an owner only root reaches it", async () => {
    const dir = mkdtempSync(join(tmpdir(), "recv-"));
    const r = await streamReceiver(join(dir, "state.mig"));
    try {
      expect(sendAs(NOBODY.uid, r.uri.replace(/^unix:/, ""), "x")).toBe(false);
    } finally {
      await r.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
