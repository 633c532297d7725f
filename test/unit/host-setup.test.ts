import { appendFileSync, chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import pino from "pino";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { LinuxHostSetup } from "../../src/adapters/host/setup.js";
import { prepareHost, type HostPrepareConfig } from "../../src/app/host-prepare.js";
import { BangerError } from "../../src/domain/errors.js";
import type { HostSetup, HostSetupRequest } from "../../src/ports/host-setup.js";
import type { Runner, RunOptions, RunResult } from "../../src/ports/runner.js";

/**
 * A host in a temp dir: passwd and group files the account tools edit, device "nodes" that are
 * plain files, and the kernel's answer to "may the VMM user open/pass this" kept as sets, which
 * setfacl extends. Every call is recorded with its options.
 */
class FakeHost implements Runner {
  calls: { cmd: string; args: string[]; opts?: RunOptions }[] = [];
  granted = new Set<string>();
  blocked = new Set<string>();
  missing = new Set<string>();
  private nextId = 990;

  constructor(readonly files: { passwd: string; group: string }) {}

  run(cmd: string, args: string[], opts?: RunOptions): Promise<RunResult> {
    this.calls.push({ cmd, args, opts });
    if (this.missing.has(cmd)) return Promise.reject(new BangerError("COMMAND_FAILED", `cannot run ${cmd}: spawn ${cmd} ENOENT`));
    const ok = { code: 0, stdout: "", stderr: "" };
    const name = args[args.length - 1];
    switch (cmd) {
      case "groupadd":
        appendFileSync(this.files.group, `${name}:x:${this.nextId++}:\n`);
        return Promise.resolve(ok);
      case "useradd": {
        const id = this.nextId++;
        appendFileSync(this.files.passwd, `${name}:x:${id}:${id}::/nonexistent:/usr/sbin/nologin\n`);
        appendFileSync(this.files.group, `${name}:x:${id}:\n`);
        return Promise.resolve(ok);
      }
      case "usermod": {
        const [, group, user] = args;
        const lines = readFileSync(this.files.group, "utf8")
          .split("\n")
          .map((l) => (l.startsWith(`${group}:`) ? `${l}${l.endsWith(":") ? "" : ","}${user}` : l));
        writeFileSync(this.files.group, lines.join("\n"));
        return Promise.resolve(ok);
      }
      case "setfacl":
        this.granted.add(name);
        return Promise.resolve(ok);
      case "setpriv": {
        const t = args.slice(args.indexOf("test") + 1);
        const pass = t[0] === "-x" ? !this.blocked.has(t[1]) : this.granted.has(t[1]);
        return Promise.resolve({ ...ok, code: pass ? 0 : 1 });
      }
    }
    return Promise.reject(new Error(`unexpected command ${cmd}`));
  }

  mutating(): string[] {
    return this.calls.filter((c) => c.cmd !== "setpriv").map((c) => [c.cmd, ...c.args].join(" "));
  }
}

describe("host setup (LinuxHostSetup with a fake host)", () => {
  let dir: string;
  let host: FakeHost;
  let req: HostSetupRequest;

  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), "banger-setup-"));
    const files = { passwd: join(dir, "passwd"), group: join(dir, "group") };
    writeFileSync(files.passwd, "root:x:0:0:root:/root:/bin/bash\n");
    writeFileSync(files.group, "root:x:0:\nkvm:x:105:\n");
    host = new FakeHost(files);
    const tun = join(dir, "tun");
    writeFileSync(tun, "");
    chmodSync(tun, 0o600);
    const state = join(dir, "state");
    mkdirSync(state, { mode: 0o700 });
    chmodSync(state, 0o700);
    req = { vmmUser: "banger-vmm", apiGroup: "banger", devices: [tun, join(dir, "kvm-absent")], stateDir: state };
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  const setup = () => new LinuxHostSetup(host, host.files);

  it("on a fresh host: group, user, kvm membership, an ACL on the root-only device, a traversable state dir; a second run changes nothing", async () => {
    const r = await setup().ensure(req);
    expect(r.problems).toEqual([]);
    expect(r.blocked).toBeUndefined();
    expect(r.done).toEqual([
      expect.stringMatching(/^created group banger /),
      "created system user banger-vmm",
      "added banger-vmm to group kvm",
      `granted banger-vmm read-write on ${req.devices[0]} (ACL)`,
      `made ${req.stateDir} traversable (mode 701)`,
    ]);
    expect(host.mutating()).toEqual([
      "groupadd --system banger",
      "useradd --system --user-group --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin banger-vmm",
      "usermod -aG kvm banger-vmm",
      `setfacl -m u:banger-vmm:rw ${req.devices[0]}`,
    ]);
    // Never by opening the node to everyone.
    expect(statSync(req.devices[0]).mode & 0o777).toBe(0o600);
    expect(statSync(req.stateDir).mode & 0o777).toBe(0o701);
    // The probes run with exactly the VMM's credentials: setpriv to its uid, gid and group kvm, no capabilities.
    const probe = host.calls.find((c) => c.cmd === "setpriv")!;
    expect(probe.args).toEqual(expect.arrayContaining(["--reuid=991", "--regid=991", "--groups=105", "--bounding-set=-all", "test"]));
    // Every command has a timeout.
    for (const c of host.calls) expect(c.opts?.timeoutMs, c.cmd).toBeGreaterThan(0);

    host.calls = [];
    const again = await setup().ensure(req);
    expect(again).toEqual({ done: [], problems: [], blocked: undefined });
    expect(host.mutating()).toEqual([]);
  });

  it('vmm_user = "" creates no account and grants nothing', async () => {
    const r = await setup().ensure({ ...req, vmmUser: "" });
    expect(host.mutating()).toEqual(["groupadd --system banger"]);
    expect(r.done).toHaveLength(1);
  });

  it("a device the VMM user already opens (mode, group or an existing ACL) is left alone", async () => {
    host.granted.add(req.devices[0]);
    await setup().ensure(req);
    expect(host.mutating().filter((c) => c.startsWith("setfacl"))).toEqual([]);
  });

  it("without setfacl: a problem with the fix, the device untouched", async () => {
    host.missing.add("setfacl");
    const r = await setup().ensure(req);
    expect(r.problems).toEqual([
      { detail: `cannot grant banger-vmm read-write on ${req.devices[0]}: setfacl is not installed`, fix: expect.stringMatching(/apt-get install acl/) },
    ]);
    expect(statSync(req.devices[0]).mode & 0o777).toBe(0o600);
  });

  it("without useradd: a problem with the fix, and nothing is attempted for the missing user", async () => {
    host.missing.add("useradd");
    const r = await setup().ensure(req);
    expect(r.problems).toEqual([
      { detail: "could not create system user banger-vmm: useradd is not installed", fix: expect.stringMatching(/^useradd --system/) },
    ]);
    expect(host.calls.map((c) => c.cmd)).toEqual(["groupadd", "useradd"]);
  });

  it("a parent the VMM user cannot pass is named, with its fix", async () => {
    host.blocked.add(req.stateDir).add(dir);
    const r = await setup().ensure(req);
    expect(r.blocked).toBe(dir);
    expect(r.problems).toEqual([
      { detail: expect.stringMatching(new RegExp(`cannot pass through ${dir} .*VMMs run as root`)), fix: expect.stringMatching(`^chmod o\\+x ${dir}`) },
    ]);
  });
});

describe("bangerd's start-up host setup (prepareHost)", () => {
  const cfg: HostPrepareConfig = {
    enabled: true,
    root: true,
    vmmUser: "banger-vmm",
    apiGroup: "banger",
    devices: ["/dev/net/tun"],
    stateDir: "/var/lib/banger",
  };
  const logged = () => {
    const lines: { level: number; msg: string; fix?: string; stage?: string }[] = [];
    const log = pino({ level: "info" }, { write: (s: string) => void lines.push(JSON.parse(s) as (typeof lines)[number]) });
    return { log, lines };
  };
  const recording = (result = { done: ["created system user banger-vmm"], problems: [{ detail: "cannot grant", fix: "setfacl" }] }) => {
    const seen: HostSetupRequest[] = [];
    const setup: HostSetup = { ensure: (r) => (seen.push(r), Promise.resolve(result)) };
    return { setup, seen };
  };

  it("as root: runs the setup once and logs each change (info) and each problem with its fix (warn)", async () => {
    const { log, lines } = logged();
    const { setup, seen } = recording();
    await prepareHost(setup, cfg, log);
    expect(seen).toEqual([{ vmmUser: "banger-vmm", apiGroup: "banger", devices: ["/dev/net/tun"], stateDir: "/var/lib/banger" }]);
    expect(lines.map((l) => [l.level, l.msg, l.fix, l.stage])).toEqual([
      [30, "created system user banger-vmm", undefined, "host-setup"],
      [40, "cannot grant", "setfacl", "host-setup"],
    ]);
  });

  it("not root: one warning with the fix, no setup; host_setup = false: no setup, one info line", async () => {
    for (const [c, level] of [
      [{ ...cfg, root: false }, 40],
      [{ ...cfg, enabled: false }, 30],
    ] as const) {
      const { log, lines } = logged();
      const { setup, seen } = recording();
      expect(await prepareHost(setup, c, log)).toBeUndefined();
      expect(seen).toEqual([]);
      expect(lines.map((l) => l.level)).toEqual([level]);
    }
  });

  it("a failing setup is a warning, never a failed start", async () => {
    const { log, lines } = logged();
    const setup: HostSetup = { ensure: () => Promise.reject(new Error("vmm_user banger-vmm is root (uid 0)")) };
    expect(await prepareHost(setup, cfg, log)).toBeUndefined();
    expect(lines).toEqual([expect.objectContaining({ level: 40, msg: "host setup failed", err: "vmm_user banger-vmm is root (uid 0)" })]);
  });
});
