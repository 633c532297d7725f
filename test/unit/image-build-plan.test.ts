import { mkdirSync, readdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { buildImage, checkBuild, type BuildInput } from "../../src/app/image-build.js";
import { ImageService } from "../../src/app/images.js";
import { listVms } from "../../src/app/vm-lookup.js";
import { sha256Hex } from "../../src/app/build-digest.js";
import type { BuildEvent } from "../../src/domain/build.js";
import { BangerError } from "../../src/domain/errors.js";
import { world, type WorldOptions } from "../helpers/app-world.js";
import { leases } from "../helpers/db.js";

/** A base image whose files exist and match the fakes' checksum ("0" * 64), so verify-base passes. */
function buildWorld(failAt?: string, opts: WorldOptions & { seed?: boolean; os?: string; badChecksum?: boolean } = {}) {
  const w = world(failAt, 0, opts);
  mkdirSync(w.cfg.paths.imagesDir, { recursive: true });
  const dir = join(w.dir, "base");
  mkdirSync(dir);
  const elf = Buffer.alloc(64);
  elf.writeUInt32BE(0x7f454c46, 0);
  elf[4] = 2;
  elf.writeUInt16LE(2, 16);
  elf.writeUInt16LE(0x3e, 18);
  writeFileSync(join(dir, "vmlinux"), elf);
  writeFileSync(join(dir, "rootfs.ext4"), "rootfs");
  writeFileSync(join(dir, "seed.ext4"), "seed");
  const sha = opts.badChecksum ? "f".repeat(64) : "0".repeat(64);
  w.store.insertImage({
    id: "base1",
    name: "base-1",
    bootArgs: "console=ttyS0",
    guest: { os: opts.os ?? "debian", services: [{ name: "ssh", port: 22 }] },
    artifacts: [
      { role: "kernel", path: join(dir, "vmlinux"), sha256: sha, sizeBytes: 64 },
      { role: "rootfs", path: join(dir, "rootfs.ext4"), sha256: sha, sizeBytes: 6 },
      ...(opts.seed === false ? [] : [{ role: "work_seed" as const, path: join(dir, "seed.ext4"), sha256: sha, sizeBytes: 4 }]),
    ],
  });
  w.store.setAlias("base", "base1");
  const images = new ImageService(w.d);
  const events: BuildEvent[] = [];
  const build = (input: Partial<BuildInput>, signal?: AbortSignal) =>
    buildImage(w.d, images, checkBuild(w.d, { from: "base", name: "tools-1", steps: [], ...input }), { signal, emit: (e) => events.push(e) });
  return { ...w, images, events, build };
}

const script = (name: string, content: string) => ({ kind: "script" as const, name, content, sha256: sha256Hex(content) });
const run = (command: string) => ({ kind: "run" as const, command });

/** Nothing of the build is left: no VM row, lease, TAP, NAT element, process, VM dir, image row or image dir. */
function expectNothingLeft(w: ReturnType<typeof buildWorld>) {
  expect(w.store.listVms()).toEqual([]);
  expect(leases(w.store)).toEqual([]);
  expect(w.held.taps.size + w.held.nat.size + w.held.procs.size).toBe(0);
  expect(readdirSync(w.cfg.paths.vmsDir)).toEqual([]);
  expect(w.store.getImage("tools-1")).toBeUndefined();
  expect(readdirSync(w.cfg.paths.imagesDir, { withFileTypes: true }).filter((e) => e.isDirectory())).toEqual([]);
}

const STAGES = [
  "verify-base",
  "lease-ip",
  "tap",
  "rootfs",
  "work-disk",
  "inject",
  "nat",
  "spawn-vmm",
  "configure",
  "start",
  "wait-ssh",
  "packages",
  "script:setup.sh",
  "run:2",
  "poweroff",
  "fsck",
  "strip-identity",
  "shrink-seed",
  "register",
  "promote",
];

describe("image build plan", () => {
  it("runs packages, scripts and commands in order, registers the image with its parent and digests, and removes the builder", async () => {
    const w = buildWorld(undefined, { shell: (cmd) => ({ code: 0, lines: [`ran ${cmd.slice(0, 20)}`] }) });
    const image = await w.build({
      steps: [script("setup.sh", "#!/bin/sh\necho setup\n"), run("echo hi > /root/hello")],
      packages: ["jq", "curl"],
      nat: true,
      rootfsSize: "2G",
      promoteAs: "tools",
    });
    expect(image.name).toBe("tools-1");
    expect(image.aliases).toEqual(["tools"]);
    expect(image.build?.parent).toBe("base-1");
    expect(image.build?.steps.map((s) => s.kind)).toEqual(["packages", "script", "run"]);
    expect(image.build?.steps[1].sha256).toBe(sha256Hex("#!/bin/sh\necho setup\n"));
    expect(image.build?.digest).toMatch(/^[0-9a-f]{64}$/);
    expect(image.build?.stages.map((s) => s.stage)).toEqual(STAGES.slice(0, STAGES.indexOf("register")));
    expect(image.artifacts.map((a) => a.role)).toEqual(["kernel", "rootfs", "work_seed"]);
    expect(image.artifacts.find((a) => a.role === "kernel")!.path).toContain(image.id); // its own copy, not the base's

    const done = w.events.filter((e) => e.type === "stage" && e.status === "done").map((e) => (e as { stage: string }).stage);
    expect(done).toEqual([...STAGES, "teardown"]);
    expect(w.events.find((e) => e.type === "builder")).toMatchObject({ vm: expect.stringMatching(/^builder-/) });
    expect(w.events.filter((e) => e.type === "output").map((e) => (e as { stage: string }).stage)).toEqual(["packages", "script:setup.sh", "run:2"]);

    expect(w.shellCalls[0].command).toBe("apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends jq curl");
    expect(w.shellCalls[1].input).toBe("#!/bin/sh\necho setup\n");
    expect(w.shellCalls[2].command).toBe("echo hi > /root/hello");
    expect(w.diskCalls[0]).toMatch(new RegExp(`^grow .*rootfs.ext4 ${2 * 1024 ** 3}$`));
    expect(w.diskCalls.filter((c) => c.startsWith("check"))).toHaveLength(2);
    expect(w.diskCalls.some((c) => /^scrub .*rootfs.ext4 9\+1$/.test(c))).toBe(true);
    expect(w.diskCalls.some((c) => /^shrink .*work.ext4$/.test(c))).toBe(true);
    expect(w.held.stops).toHaveLength(1); // powered off through the VMM's stop, after the guest's own poweroff

    // The builder is gone; the image stays.
    expect(w.store.listVms()).toEqual([]);
    expect(leases(w.store)).toEqual([]);
    expect(w.held.taps.size + w.held.nat.size + w.held.procs.size).toBe(0);
    expect(readdirSync(w.cfg.paths.vmsDir)).toEqual([]);
  });

  it("a step that exits non-zero fails naming the stage and command, shows its output, and leaves nothing", async () => {
    const w = buildWorld(undefined, { shell: (cmd) => (cmd === "exit 3" ? { code: 3, lines: ["about to fail", "bye"] } : { code: 0 }) });
    const err = (await w.build({ steps: [run("true"), run("exit 3"), run("never")], nat: true }).catch((e) => e)) as BangerError;
    expect(err).toBeInstanceOf(BangerError);
    expect(err.code).toBe("COMMAND_FAILED");
    expect(err.stage).toBe("run:2");
    expect(err.message).toMatch(/^image build of tools-1 failed at stage run:2: `exit 3` exited 3/);
    expect(err.message).toMatch(/about to fail\nbye/);
    expect(w.shellCalls.map((c) => c.command)).toEqual(["true", "exit 3"]);
    expectNothingLeft(w);
  });

  it.each(["tap", "rootfs", "inject", "spawn-vmm", "start", "wait-ssh", "fsck"])("a failure at %s undoes everything", async (stage) => {
    const w = buildWorld(stage);
    const err = (await w.build({ steps: [run("true")], nat: true }).catch((e) => e)) as BangerError;
    expect(err.stage).toBe(stage);
    expect(err.message).toMatch(/injected failure/);
    expectNothingLeft(w);
  });

  it("cancelling mid-step (the client went away) kills the step and leaves nothing", async () => {
    const client = new AbortController();
    const w = buildWorld(undefined, {
      shell: async () => {
        client.abort();
        await new Promise((r) => setTimeout(r, 10));
        return { code: 0 };
      },
    });
    const err = (await w.build({ steps: [run("sleep 100")] }, client.signal).catch((e) => e)) as BangerError;
    expect(err.code).toBe("CANCELLED");
    expect(err.stage).toBe("run:1");
    expectNothingLeft(w);
  });

  it("--timeout ends a step that runs too long, says so, and leaves nothing", async () => {
    const w = buildWorld(undefined, { shell: () => new Promise((r) => setTimeout(() => r({ code: 0 }), 1_500)) });
    const err = (await w.build({ steps: [run("sleep 100")], timeoutMs: 1_000 }).catch((e) => e)) as BangerError;
    expect(err.code).toBe("TIMEOUT");
    expect(err.message).toMatch(/did not finish within/);
    expectNothingLeft(w);
  });

  it("the builder is a VM row with role builder that `vm ls` leaves out while the build runs", async () => {
    let seen: { all: string[]; listed: string[] } | undefined;
    const w = buildWorld(undefined, {
      shell: () => {
        seen = { all: w.store.listVms().map((v) => `${v.role}:${v.state}`), listed: listVms(w.d).map((v) => v.name) };
        return { code: 0 };
      },
    });
    await w.build({ steps: [run("true")] });
    expect(seen).toEqual({ all: ["builder:creating"], listed: [] });
  });

  it("a base without a work-seed builds with an empty /root, and the image still gets a seed", async () => {
    const w = buildWorld(undefined, { seed: false });
    const image = await w.build({ steps: [run("echo hi > /root/hello")] });
    expect(image.build?.stages.map((s) => s.stage)).toContain("work-disk-fallback");
    expect(image.artifacts.some((a) => a.role === "work_seed")).toBe(true);
  });

  it("--packages uses the base OS's own package manager", async () => {
    const w = buildWorld(undefined, { os: "alpine" });
    await w.build({ packages: ["jq"] });
    expect(w.shellCalls[0].command).toBe("apk add --no-cache jq");
  });

  it("a base whose files no longer match their checksums is refused before anything is acquired", async () => {
    const w = buildWorld(undefined, { badChecksum: true });
    const err = (await w.build({ steps: [run("true")] }).catch((e) => e)) as BangerError;
    expect(err.code).toBe("IMAGE_BROKEN");
    expect(err.stage).toBe("verify-base");
    expect(w.store.getImage("base-1")?.status).toBe("broken");
    expectNothingLeft(w);
  });
});

describe("image build input", () => {
  const check = (input: Partial<BuildInput>, setup?: (w: ReturnType<typeof buildWorld>) => void) => {
    const w = buildWorld();
    setup?.(w);
    try {
      checkBuild(w.d, { from: "base", name: "tools-1", steps: [run("true")], ...input });
      return undefined;
    } catch (e) {
      expectNothingLeft(w);
      return e as BangerError;
    }
  };

  it("refuses a missing base", () => expect(check({ from: "nope" })?.code).toBe("IMAGE_NOT_FOUND"));
  it("refuses a taken name (image or alias)", () => {
    expect(check({ name: "base-1" })?.code).toBe("IMAGE_EXISTS");
    expect(check({ name: "base" })?.code).toBe("IMAGE_EXISTS");
  });
  it("refuses a name a build in progress holds", () => {
    expect(check({}, (w) => void w.d.ops.begin("image-build:tools-1", "create"))?.message).toMatch(/being built/);
  });
  it("refuses package names with shell metacharacters, naming them", () => {
    const err = check({ packages: ["jq", "curl;rm -rf /"] });
    expect(err?.code).toBe("BAD_REQUEST");
    expect(err?.message).toContain('"curl;rm -rf /"');
    for (const bad of ["a|b", "$(id)", "`id`", "a b", "a>b", "a&", "-y"]) expect(check({ packages: [bad] })?.code).toBe("BAD_REQUEST");
    expect(check({ packages: ["libc6=2.36-9", "g++", "python3.11", "foo:amd64", "bar~1.2"] })).toBeUndefined();
  });
  it("refuses a broken base", () => {
    expect(check({}, (w) => w.store.setImageStatus("base1", "broken", "rootfs checksum changed"))?.code).toBe("IMAGE_BROKEN");
  });
  it("refuses a script whose content does not match its digest", () => {
    expect(check({ steps: [{ kind: "script", name: "x.sh", content: "echo", sha256: "0".repeat(64) }] })?.message).toMatch(/does not match/);
  });
  it("refuses nothing to do, a bad size, a shrinking size and a bad alias", () => {
    expect(check({ steps: [] })?.message).toMatch(/nothing to build/);
    expect(check({ rootfsSize: "lots" })?.code).toBe("BAD_REQUEST");
    expect(check({ rootfsSize: "1" })?.message).toMatch(/smaller than/);
    expect(check({ promoteAs: "Bad Alias" })?.code).toBe("INVALID_NAME");
    expect(check({ promoteAs: "base-1" })?.code).toBe("IMAGE_EXISTS");
  });
  it("names the request field at fault, so a form can show the error beside it", () => {
    const fieldOf = (input: Partial<BuildInput>) => check(input)?.field;
    expect(fieldOf({ name: "Bad Name" })).toBe("name");
    expect(fieldOf({ name: "base-1" })).toBe("name");
    expect(fieldOf({ from: "nope" })).toBe("from");
    expect(fieldOf({ packages: ["a;b"] })).toBe("packages");
    expect(fieldOf({ rootfsSize: "lots" })).toBe("rootfsSize");
    expect(fieldOf({ rootfsSize: "1" })).toBe("rootfsSize");
    expect(fieldOf({ promoteAs: "Bad Alias" })).toBe("promoteAs");
    expect(fieldOf({ promoteAs: "base-1" })).toBe("promoteAs");
    expect(fieldOf({ steps: [] })).toBe("steps");
  });
});

describe("daemon start after a crash mid-registration", () => {
  it("removes unfinished <id>.partial image directories and keeps registered ones", async () => {
    const w = buildWorld();
    mkdirSync(join(w.cfg.paths.imagesDir, "abc.partial"));
    mkdirSync(join(w.cfg.paths.imagesDir, "base1"));
    await w.images.reconcileQuick();
    expect(readdirSync(w.cfg.paths.imagesDir)).toEqual(["base1"]);
  });
});
