import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { closeSync, existsSync, openSync, readdirSync, writeFileSync, writeSync } from "node:fs";
import { join } from "node:path";
import Database from "better-sqlite3";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { BANGER, REPO, built, startTestDaemon, type TestDaemon } from "../helpers/daemon.js";
import { builtDebianImage, guestSkipReason, registerArgs } from "../helpers/guest-image.js";
import { hostLeftovers } from "../helpers/leaks.js";
import { createNetns, createUpstream, type Netns, type Upstream } from "../helpers/netns.js";

const REPO_DIR = join(REPO, "build/cache/apt-test-repo");
const skip =
  built() ??
  guestSkipReason() ??
  (existsSync(join(REPO_DIR, "Release")) ? undefined : "needs the local apt repo: run `bash scripts/apt-test-repo.sh` (make test does)");

// Serves a directory read-only: the flat apt repository the guest installs jq from.
const STATIC_JS = `
const http = require("node:http"), fs = require("node:fs"), path = require("node:path");
const [dir, port] = process.argv.slice(1);
http.createServer((req, res) => {
  const name = path.basename(decodeURIComponent(req.url.split("?")[0]));
  const file = path.join(dir, name);
  if (!name || !fs.existsSync(file)) { res.statusCode = 404; return res.end(); }
  res.setHeader("content-length", fs.statSync(file).size);
  fs.createReadStream(file).pipe(res);
}).listen(Number(port), "0.0.0.0", () => process.stdout.write("LISTENING\\n"));
`;

function serveDir(ns: Netns, dir: string, port: number): Promise<ChildProcess> {
  const child = spawn("ip", ["netns", "exec", ns.name, process.execPath, "-e", STATIC_JS, dir, String(port)], { stdio: ["ignore", "pipe", "pipe"] });
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error("static server did not start")), 10_000);
    child.stdout!.on("data", (b: Buffer) => {
      if (b.toString().includes("LISTENING")) {
        clearTimeout(timer);
        resolve(child);
      }
    });
    child.on("exit", (code) => reject(new Error(`static server exited ${code}`)));
  });
}

/** What a file in an ext4 image holds, read with debugfs (no mount); undefined when it is not there. */
function readInImage(image: string, path: string): string | undefined {
  const stat = spawnSync("debugfs", ["-R", `stat ${path}`, image], { encoding: "utf8" });
  if (/File not found/.test(stat.stderr)) return undefined;
  return spawnSync("debugfs", ["-R", `cat ${path}`, image], { encoding: "utf8" }).stdout;
}

describe.skipIf(skip)(`e2e: image build under QEMU, apt from an upstream namespace${skip ? ` (skipped: ${skip})` : ""}`, () => {
  let ns: Netns;
  let up: Upstream;
  let d: TestDaemon;
  let server: ChildProcess | undefined;

  beforeAll(async () => {
    ns = await createNetns("build");
    up = await createUpstream(ns);
    server = await serveDir(up.ns, REPO_DIR, 80);
    // A generous SSH wait: CI and this host may run several TCG guests at once.
    d = await startTestDaemon({ ns, config: { memory_mib: 1024, work_disk_gib: 2, ssh_timeout_s: 300 } });
    // SSH only: the test is about the build, and opencode's cold start under TCG costs minutes per VM.
    const reg = await d.cli(registerArgs(builtDebianImage()!, "debian-b-1", { services: false }), { timeoutMs: 300_000 });
    expect(reg.stderr).toBe("");
    expect((await d.cli(["image", "promote", "debian-b-1", "--as", "debian"])).code).toBe(0);
  });

  afterAll(async () => {
    server?.kill("SIGKILL");
    await d?.destroy();
    await up?.destroy();
    await ns?.destroy();
  });

  it("builds deb-tools: apt from the upstream through NAT, a file in /root, stages streamed and recorded", async () => {
    const scriptFile = join(d.dir, "setup.sh");
    writeFileSync(scriptFile, '#!/bin/bash\nset -eu\necho "shell=$BASH_VERSION" | cut -c1-7 > /root/from-script\necho script-ran\n');
    const r = await d.cli(
      [
        "image",
        "build",
        "--from",
        "debian",
        "--name",
        "deb-tools",
        "--run",
        `echo 'deb [trusted=yes] http://${up.address}/ ./' > /etc/apt/sources.list && apt-get update`,
        "--run",
        "apt-get install -y jq",
        "--run",
        "echo hi > /root/hello",
        // A script is uploaded as content and run from a private temp file, under its own #! interpreter.
        "--script",
        scriptFile,
        "--nat",
        "--rootfs-size",
        "2G",
      ],
      { timeoutMs: 900_000 },
    );
    if (r.code !== 0) console.error(r.stdout, r.stderr);
    expect(r.code).toBe(0);
    console.log(
      r.stderr
        .split("\n")
        .filter((l) => l.includes("✓"))
        .join("\n"),
    );
    // Progress on stderr as it happens: stages and the guest's own output.
    expect(r.stderr).toMatch(/✓ run:2/);
    expect(r.stderr).toMatch(/\| .*Setting up jq/);
    expect(r.stderr).toMatch(/✓ script:setup.sh .*exit 0, 1 lines of output/);
    expect(r.stderr).toMatch(/\| script-ran/);
    expect(r.stdout).toMatch(/built deb-tools/);

    const show = await d.cli(["image", "show", "deb-tools"]);
    expect(show.stdout).toMatch(/built from debian-b-1 by script sha256:[0-9a-f]{64}/);
    expect(show.stdout).toMatch(/poweroff/);
    expect(show.stdout).toMatch(/shrink-seed/);
    const image = (await d.cli(["--json", "image", "show", "deb-tools"])).json<{
      image: { id: string; artifacts: { role: string; path: string; sizeBytes: number }[]; guest: { services: { port: number }[] } };
    }>().image;
    const rootfs = image.artifacts.find((a) => a.role === "rootfs")!;
    expect(rootfs.sizeBytes).toBe(2 * 1024 ** 3);
    // Owns its boot set; the seed was shrunk well below the builder's 2 GiB /root disk.
    expect(image.artifacts.find((a) => a.role === "kernel")!.path).toContain(image.id);
    expect(image.artifacts.find((a) => a.role === "work_seed")!.sizeBytes).toBeLessThan(1024 ** 3);
    expect(image.guest.services.map((s) => s.port)).toEqual([22]);
    // No builder identity ships in the image.
    expect(readInImage(rootfs.path, "/etc/ssh/banger/authorized_keys")).toBeUndefined();
    expect(readInImage(rootfs.path, "/etc/ssh/ssh_host_ed25519_key")).toBeUndefined();
    expect(readInImage(rootfs.path, "/etc/machine-id")).toBe("");
    // The builder is gone: only the image remains.
    expect((await d.cli(["--json", "vm", "ls"])).json<{ vms: unknown[] }>().vms).toEqual([]);
    expect(readdirSync(join(d.stateDir, "vms"))).toEqual([]);
  });

  it("a VM created from deb-tools has jq on PATH and /root/hello", async () => {
    const c = await d.cli(["vm", "create", "--image", "deb-tools", "--name", "tools"], { timeoutMs: 600_000 });
    if (c.code !== 0) console.error(c.stdout, c.stderr);
    expect(c.code).toBe(0);
    const r = await d.cli([
      "vm",
      "ssh",
      "tools",
      "--",
      "command -v jq; echo '{\"a\":1}' | jq .a; cat /root/hello /root/from-script; ls /tmp | grep -c banger-build; df -h /root | tail -1 | awk '{print $2}'",
    ]);
    expect(r.stderr).toBe("");
    const [jq, one, hello, fromScript, leftovers, rootSize] = r.stdout.trim().split("\n");
    // The script ran under bash and removed its temp file.
    expect([jq, one, hello, fromScript, leftovers]).toEqual(["/usr/bin/jq", "1", "hi", "shell=5", "0"]);
    // The shrunk seed grew back to the VM's work disk size.
    expect(rootSize).toMatch(/^[12](\.\d)?G$/);
    expect((await d.cli(["vm", "rm", "tools", "--force"], { timeoutMs: 120_000 })).code).toBe(0);
  });

  it("a failing --run names the stage and command with its output, and leaves nothing", async () => {
    const r = await d.cli(["image", "build", "--from", "debian", "--name", "deb-fail", "--run", "true", "--run", "echo before-the-end; exit 3"], {
      timeoutMs: 600_000,
    });
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/image build of deb-fail failed at stage run:2: `echo before-the-end; exit 3` exited 3/);
    expect(r.stderr).toMatch(/last 1 lines of its output ---\nbefore-the-end/);
    expect((await d.cli(["image", "show", "deb-fail"])).code).toBe(1);
    const db = new Database(join(d.stateDir, "banger.db"), { readonly: true });
    try {
      expect(db.prepare("select count(*) n from vms").get()).toEqual({ n: 0 });
      expect(db.prepare("select count(*) n from ip_leases").get()).toEqual({ n: 0 });
      expect(db.prepare("select name from images order by name").all()).toEqual([{ name: "deb-tools" }, { name: "debian-b-1" }]);
    } finally {
      db.close();
    }
    expect(readdirSync(join(d.stateDir, "vms"))).toEqual([]);
    expect(readdirSync(join(d.stateDir, "images")).length).toBe(2);
    const left = await hostLeftovers(ns);
    expect(left).toEqual({ natElements: [], nonPoolTaps: [], vmmProcesses: [] });
  });

  it("Ctrl-C in the CLI cancels a build once its guest is started; nothing is left", async () => {
    const child = spawn("ip", ["netns", "exec", ns.name, BANGER, "image", "build", "--from", "debian", "--name", "deb-cancel", "--run", "sleep 600"], {
      env: { ...process.env, BANGER_CONFIG: d.configPath, XDG_DATA_HOME: join(d.dir, "data") },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let stderr = "";
    const exited = new Promise<number | null>((r) => child.on("exit", (code) => r(code)));
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`the build never started its guest:\n${stderr}`)), 300_000);
      child.stderr!.on("data", (b: Buffer) => {
        stderr += b.toString();
        if (/✓ start\b/.test(stderr)) {
          clearTimeout(timer);
          resolve();
        }
      });
    });
    // `ip netns exec` execs the CLI in place, so this pid is the CLI's own.
    child.kill("SIGINT");
    expect(await exited).toBe(130);
    expect(stderr).toMatch(/build of deb-cancel cancelled; nothing was left behind/);
    expect(readdirSync(join(d.stateDir, "vms"))).toEqual([]);
    expect((await d.cli(["image", "show", "deb-cancel"])).code).toBe(1);
    expect(await hostLeftovers(ns)).toEqual({ natElements: [], nonPoolTaps: [], vmmProcesses: [] });
  });

  it("refuses bad input before anything is acquired", async () => {
    const imagesBefore = readdirSync(join(d.stateDir, "images")).length;
    const cases: [string[], RegExp][] = [
      [["--from", "nope", "--name", "x-1", "--run", "true"], /no image named nope/],
      [["--from", "debian", "--name", "debian-b-1", "--run", "true"], /already exists/],
      [["--from", "debian", "--name", "x-1", "--packages", "jq,curl;reboot"], /"curl;reboot" is not a package name/],
      [["--from", "debian", "--name", "x-1", "--script", "/nonexistent/setup.sh"], /--script \/nonexistent\/setup.sh: no such file/],
    ];
    for (const [args, want] of cases) {
      const r = await d.cli(["image", "build", ...args]);
      expect(r.code, r.stderr).toBe(1);
      expect(r.stderr).toMatch(want);
    }

    // A base whose files changed on disk since registration: caught by its checksums before anything is acquired.
    expect((await d.cli(registerArgs(builtDebianImage()!, "debian-broken", { services: false }), { timeoutMs: 300_000 })).code).toBe(0);
    const broken = (await d.cli(["--json", "image", "show", "debian-broken"])).json<{ image: { artifacts: { role: string; path: string }[] } }>().image;
    const kernel = broken.artifacts.find((a) => a.role === "kernel")!.path;
    const fh = openSync(kernel, "r+");
    writeSync(fh, Buffer.from("banger"), 0, 6, 4096);
    closeSync(fh);
    const r = await d.cli(["image", "build", "--from", "debian-broken", "--name", "x-1", "--run", "true"], { timeoutMs: 120_000 });
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/failed at stage verify-base: base image debian-broken is broken: kernel checksum changed/);
    expect((await d.cli(["image", "ls"])).stdout).toMatch(/debian-broken .*broken/);
    expect((await d.cli(["image", "rm", "debian-broken"])).code).toBe(0);

    expect(readdirSync(join(d.stateDir, "vms"))).toEqual([]);
    expect(readdirSync(join(d.stateDir, "images")).length).toBe(imagesBefore);
  });
});
