import { randomUUID } from "node:crypto";
import { join } from "node:path";
import { packageManagerFor, parseSize, validatePackages, type BuildEvent, type BuildInfo, type BuildStep } from "../domain/build.js";
import { BangerError, asBangerError, isCode } from "../domain/errors.js";
import { buildDigest, sha256Hex, stepDigests } from "./build-digest.js";
import { knownHostsLine } from "../domain/known-hosts.js";
import { validateImageName, validateName } from "../domain/names.js";
import { artifactOf, type GuestService, type Image, type Vm } from "../domain/types.js";
import type { Vmm } from "../ports/vmm.js";
import { bootStages, explainGuestFailure, tapStage, type BootContext } from "./boot-stages.js";
import { resolveImage } from "./create.js";
import type { AppDeps } from "./deps.js";
import { guestSteps, type BuildDeps } from "./image-build-steps.js";
import type { ImageService } from "./images.js";
import { leaseStage } from "./lease-stage.js";
import { Plan, type Stage } from "./plan.js";
import { cloneRootfs, injectIdentity, makeWorkDisk } from "./vm-disks.js";
import { vmFiles } from "./vm-files.js";
import { settleFailed } from "./vm-transitions.js";

export type { BuildDeps };

export interface BuildInput {
  from: string;
  name: string;
  steps: BuildStep[];
  packages?: string[];
  /** e.g. "2G": the builder's rootfs (and so the image's) is grown to this before boot. */
  rootfsSize?: string;
  nat?: boolean;
  services?: GuestService[];
  timeoutMs?: number;
  promoteAs?: string;
  /** The builder's /root disk; the image's work-seed is shrunk back to its minimum afterwards. */
  workDiskGib?: number;
}

export const DEFAULT_BUILD_TIMEOUT_MS = 30 * 60_000;
const GIB = 1024 ** 3;

/** Files a builder VM got from banger (or made on its first boot) that must not ship in an image. */
export const BUILDER_IDENTITY = {
  remove: [
    "/etc/ssh/ssh_host_ed25519_key",
    "/etc/ssh/ssh_host_ed25519_key.pub",
    "/etc/ssh/ssh_host_rsa_key",
    "/etc/ssh/ssh_host_rsa_key.pub",
    "/etc/ssh/ssh_host_ecdsa_key",
    "/etc/ssh/ssh_host_ecdsa_key.pub",
    "/etc/ssh/banger/authorized_keys",
    "/var/lib/dbus/machine-id",
    "/var/lib/systemd/random-seed",
  ],
  // Empty, as the stock images ship it: each VM then generates its own on first boot.
  empty: [{ path: "/etc/machine-id", mode: 0o444 }],
};

/** Keys of builds in progress, in the per-VM lock's name space (VM names cannot contain ':'). */
const buildKey = (name: string) => `image-build:${name}`;

export interface CheckedBuild {
  input: BuildInput;
  base: Image;
  packages: string[];
  rootfsBytes?: number;
  vmm: Vmm;
}

/** Runs a check and tags its coded error with the request field at fault, so a form can show it beside that field. */
function at<T>(field: string, check: () => T): T {
  try {
    return check();
  } catch (e) {
    if (e instanceof BangerError && e.field === undefined) throw new BangerError(e.code, e.message, { hint: e.hint, stage: e.stage, field, cause: e.cause });
    throw e;
  }
}

/** Everything that can be refused before anything is acquired; throws the coded error for bad input. */
export function checkBuild(d: Pick<AppDeps, "store" | "ops" | "vmm" | "config">, input: BuildInput): CheckedBuild {
  at("name", () => validateImageName(input.name));
  if (input.promoteAs !== undefined) at("promoteAs", () => validateName(input.promoteAs!, "alias"));
  if (d.store.getImage(input.name) || d.ops.current(buildKey(input.name))) {
    throw new BangerError("IMAGE_EXISTS", `an image or alias named ${input.name} already exists or is being built`, {
      hint: "pick another --name (builds are immutable: e.g. add a build number)",
      field: "name",
    });
  }
  if (input.promoteAs !== undefined && d.store.listImages().some((i) => i.name === input.promoteAs)) {
    throw new BangerError("IMAGE_EXISTS", `--promote-as ${input.promoteAs} is an image name, not an alias`, {
      hint: "choose an alias that is not an image name",
      field: "promoteAs",
    });
  }
  const base = at("from", () => resolveImage(d, input.from));
  const packages = at("packages", () => validatePackages(input.packages ?? []));
  for (const s of input.steps) {
    if (s.kind === "script" && stepDigestMismatch(s)) {
      throw new BangerError("BAD_REQUEST", `script ${s.name}: its content does not match the sha256 sent with it`, {
        hint: "the upload was altered; retry",
        field: "steps",
      });
    }
  }
  if (packages.length === 0 && input.steps.length === 0) {
    throw new BangerError("BAD_REQUEST", "nothing to build: give at least one --script, --run or --packages", {
      hint: "e.g. banger image build --from debian --name tools-1 --packages jq",
      field: "steps",
    });
  }
  let rootfsBytes: number | undefined;
  if (input.rootfsSize !== undefined) {
    rootfsBytes = at("rootfsSize", () => parseSize(input.rootfsSize!));
    const current = artifactOf(base, "rootfs")!.sizeBytes;
    if (rootfsBytes < current) {
      throw new BangerError("BAD_REQUEST", `--rootfs-size ${input.rootfsSize} is smaller than ${base.name}'s rootfs (${(current / GIB).toFixed(2)} GiB)`, {
        hint: "the rootfs can only grow; leave --rootfs-size out to keep its size",
        field: "rootfsSize",
      });
    }
  }
  // Resolves the VMM binary now: a host without it fails before the stream starts.
  return { input, base, packages, rootfsBytes, vmm: d.vmm(d.config.vmm) };
}

function stepDigestMismatch(s: Extract<BuildStep, { kind: "script" }>): boolean {
  return !/^[0-9a-f]{64}$/.test(s.sha256) || sha256Hex(s.content) !== s.sha256;
}

/**
 * `banger image build`: boot a throw-away builder VM from a private copy of the base image,
 * run the steps in it as root over SSH, power it off, and register its disks as a new image.
 * The builder is made by the same stages as a create (lease, TAP, disks, VMM), recorded as a
 * VM row with role "builder", so reconcile, leases and cleanup treat it like any other VM.
 * Every stage registers its undo; the builder is always undone at the end, and on failure the
 * new image is too, so a failed, timed-out or cancelled build leaves nothing.
 */
export async function buildImage(
  d: BuildDeps,
  images: ImageService,
  checked: CheckedBuild,
  opts: { signal?: AbortSignal; emit(e: BuildEvent): void },
): Promise<Image> {
  const { input, vmm } = checked;
  const id = randomUUID();
  const builderName = `builder-${id.slice(0, 8)}`;
  const timeoutMs = input.timeoutMs ?? DEFAULT_BUILD_TIMEOUT_MS;
  const deadline = Date.now() + timeoutMs;

  let nameTicket;
  try {
    nameTicket = d.ops.begin(buildKey(input.name), "create");
  } catch (e) {
    throw isCode(e, "VM_BUSY") ? new BangerError("IMAGE_EXISTS", `image ${input.name} is being built by another request`, { hint: "pick another --name" }) : e;
  }
  const vmTicket = d.ops.begin(builderName, "create");
  // One signal for everything that ends a build early, each with its own reason.
  const ctl = new AbortController();
  const cancel = (why: unknown) => !ctl.signal.aborted && ctl.abort(why);
  const onClient = () => cancel(new BangerError("CANCELLED", `image build of ${input.name} was cancelled: the client went away`));
  const onTicket = (t: { signal: AbortSignal }) => () => cancel(t.signal.reason);
  const onName = onTicket(nameTicket);
  const onVm = onTicket(vmTicket);
  opts.signal?.addEventListener("abort", onClient, { once: true });
  if (opts.signal?.aborted) onClient();
  nameTicket.signal.addEventListener("abort", onName, { once: true });
  vmTicket.signal.addEventListener("abort", onVm, { once: true });
  const timer = setTimeout(
    () =>
      cancel(
        new BangerError(
          "TIMEOUT",
          `image build of ${input.name} did not finish within ${timeoutMs < 60_000 ? `${Math.round(timeoutMs / 1000)} s` : `${Math.round(timeoutMs / 60_000)} min`}`,
          {
            hint: "raise --timeout if the steps are just slow",
          },
        ),
      ),
    timeoutMs,
  );
  timer.unref();
  try {
    return await runBuild(d, images, checked, { vmm, id, builderName, deadline, signal: ctl.signal, emit: opts.emit });
  } finally {
    clearTimeout(timer);
    opts.signal?.removeEventListener("abort", onClient);
    nameTicket.signal.removeEventListener("abort", onName);
    vmTicket.signal.removeEventListener("abort", onVm);
    vmTicket.release();
    nameTicket.release();
  }
}

interface RunContext {
  vmm: Vmm;
  id: string;
  builderName: string;
  deadline: number;
  signal: AbortSignal;
  emit(e: BuildEvent): void;
}

async function runBuild(d: BuildDeps, images: ImageService, checked: CheckedBuild, c: RunContext): Promise<Image> {
  const { input, base, packages, rootfsBytes } = checked;
  const cfg = d.config;
  const seed = artifactOf(base, "work_seed");
  const now = new Date().toISOString();
  let vm: Vm = {
    id: c.id,
    name: c.builderName,
    imageId: base.id,
    imageName: base.name,
    state: "creating",
    vmm: c.vmm.kind,
    vcpus: base.defaultVcpus ?? cfg.vcpus,
    memoryMib: base.defaultMemoryMib ?? cfg.memoryMib,
    workDiskGib: input.workDiskGib ?? base.defaultWorkDiskGib ?? cfg.workDiskGib,
    nat: input.nat ?? false,
    dir: join(cfg.vmsDir, c.id),
    // No work-seed in the base: the builder gets an empty /root, as a create would, and the image's seed is what the steps left there.
    workSeedFallback: !seed,
    role: "builder",
    createdAt: now,
    updatedAt: now,
  };
  // Before the builder row exists, so a broken base leaves nothing at all.
  const v0 = performance.now();
  const verified = await streamed(verifyBaseStage(images, base), c.emit)
    .run({ onUndo: () => undefined, signal: c.signal })
    .then(
      (detail) => ({ stage: "verify-base", durationMs: performance.now() - v0, detail: detail || undefined }),
      (e: unknown) => {
        const err = asBangerError(e);
        throw new BangerError(err.code, `image build of ${input.name} failed at stage verify-base: ${err.message}`, { hint: err.hint, stage: "verify-base" });
      },
    );
  d.store.insertVm(vm);
  c.emit({ type: "builder", vm: vm.name });
  const plan = new Plan(d.store, d.log, vm, "image-build", c.signal, cfg.eventsKeepOps);
  plan.path = "cold";
  const patch = (p: Partial<Vm>) => {
    vm = d.store.updateVm(c.id, p);
  };
  const files = vmFiles(vm.dir);
  const boot: BootContext = { d, image: base, vmm: c.vmm, vm: () => vm, patch, noWait: true };
  const steps = stepDigests(packages, input.steps);
  let image: Image | undefined;
  let keepImage = false;

  const stages: Stage[] = [
    leaseStage(d, plan, c.id, patch),
    tapStage(boot),
    {
      name: "rootfs",
      run: async ({ onUndo }) => {
        await d.files.mkdir(vm.dir);
        onUndo("vm-dir", () => d.files.remove(vm.dir));
        await cloneRootfs(d, base, files.rootfs);
        const size = await d.buildDisks.size(files.rootfs);
        if (!rootfsBytes || rootfsBytes <= size) return `private copy of ${base.name}'s rootfs (${gib(size)})`;
        await d.buildDisks.growTo(files.rootfs, rootfsBytes);
        return `private copy grown ${gib(size)} -> ${gib(rootfsBytes)}`;
      },
    },
    { name: seed ? "work-disk" : "work-disk-fallback", run: () => makeWorkDisk(d, base, files.work, vm.workDiskGib) },
    {
      name: "inject",
      run: async () => {
        const hostPublicKey = await injectIdentity(d, files.rootfs);
        await d.files.writeText(files.knownHosts, `${knownHostsLine(vm.ip!, hostPublicKey)}\n`, 0o600);
      },
    },
    ...bootStages(boot),
    ...guestSteps(d, {
      vm: () => vm,
      base,
      vmm: c.vmm,
      packages,
      manager: packageManagerFor(base.guest.os),
      steps: input.steps,
      deadline: c.deadline,
      emit: c.emit,
      patch,
    }),
    { name: "fsck", run: async () => `rootfs ${await d.buildDisks.check(files.rootfs)}, /root ${await d.buildDisks.check(files.work)}` },
    {
      name: "strip-identity",
      run: async () => {
        await d.buildDisks.scrub(files.rootfs, BUILDER_IDENTITY);
        return "host keys, authorized_keys, machine-id and random seed removed";
      },
    },
    { name: "shrink-seed", run: async () => `/root seed ${gib(await d.buildDisks.shrinkToMin(files.work))}` },
    {
      name: "register",
      run: async ({ onUndo }) => {
        const build: BuildInfo = {
          parent: base.name,
          parentId: base.id,
          digest: buildDigest(steps),
          steps,
          ...(rootfsBytes ? { rootfsBytes } : {}),
          nat: vm.nat,
          stages: [verified, ...plan.timings].map((t) => ({ stage: t.stage, ms: Math.round(t.durationMs), ...(t.detail ? { detail: t.detail } : {}) })),
        };
        image = await images.register(
          {
            name: input.name,
            kernel: artifactOf(base, "kernel")!.path,
            initrd: artifactOf(base, "initrd")?.path,
            rootfs: files.rootfs,
            workSeed: files.work,
            bootArgs: base.bootArgs,
            os: base.guest.os,
            // --service replaces the base's list; SSH stays, since every banger image is reached through it.
            services: input.services
              ? [...(input.services.some((x) => x.port === 22) ? [] : [{ name: "ssh", port: 22 }]), ...input.services]
              : base.guest.services,
            defaultVcpus: base.defaultVcpus,
            defaultMemoryMib: base.defaultMemoryMib,
            defaultWorkDiskGib: base.defaultWorkDiskGib,
            build,
            // The builder's disks are thrown away anyway: hand them over instead of copying gigabytes.
            move: ["rootfs", "work_seed"],
          },
          { internal: true },
        );
        onUndo("image", async () => {
          if (!keepImage) await images.remove(input.name);
        });
        return `${image.name} (${image.id})`;
      },
    },
    ...(input.promoteAs
      ? [
          {
            name: "promote",
            run: async () => {
              image = images.promote(input.name, input.promoteAs!);
              return `${input.promoteAs} -> ${input.name}`;
            },
          },
        ]
      : []),
  ];

  try {
    await plan.run(
      stages.map((s) => streamed(s, c.emit)),
      explainGuestFailure(d, vm.dir),
    );
  } catch (e) {
    if (plan.undoFailures > 0) settleFailed(d, vm, e, "failed");
    throw buildError(input.name, e);
  }
  // The image is made; the builder always goes (its VMM is already off, this releases TAP, lease, dir and row).
  keepImage = true;
  c.emit({ type: "stage", stage: "teardown", status: "start" });
  const t0 = performance.now();
  await plan.rollback();
  if (plan.undoFailures > 0) {
    settleFailed(d, vm, new BangerError("INTERNAL", "builder teardown incomplete"), "failed");
    d.log.error({ vm: vm.name, stage: "teardown", image: input.name }, "image built, but its builder VM could not be fully removed");
  }
  c.emit({
    type: "stage",
    stage: "teardown",
    status: "done",
    ms: Math.round(performance.now() - t0),
    detail: plan.undoFailures > 0 ? `builder ${vm.name} left failed: \`banger vm rm ${vm.name}\`` : "builder VM removed",
  });
  d.log.info({ image: input.name, stage: "total", stages: plan.timings.map((t) => `${t.stage}=${Math.round(t.durationMs)}ms`).join(" ") }, "image built");
  return images.get(input.name);
}

/** The base's files still match their checksums (a base changed on disk is marked broken and refused). */
function verifyBaseStage(images: ImageService, base: Image): Stage {
  return {
    name: "verify-base",
    run: async () => {
      const problem = (await images.verifyChecksums(base)).get(base.name);
      if (problem) {
        throw new BangerError("IMAGE_BROKEN", `base image ${base.name} is broken: ${problem}`, {
          hint: "re-register it from its build output, or build from another image",
        });
      }
      return `${base.artifacts.length} artifacts match their checksums`;
    },
  };
}

/** Each stage announces its start and its end (with time and detail) on the stream. */
function streamed(s: Stage, emit: (e: BuildEvent) => void): Stage {
  return {
    name: s.name,
    run: async (ctx) => {
      emit({ type: "stage", stage: s.name, status: "start" });
      const t0 = performance.now();
      const detail = await s.run(ctx);
      emit({ type: "stage", stage: s.name, status: "done", ms: Math.round(performance.now() - t0), ...(detail ? { detail } : {}) });
      return detail;
    },
  };
}

/** The plan speaks of the builder VM; the user asked for an image. Same code, stage and hint. */
function buildError(name: string, e: unknown): BangerError {
  const err = asBangerError(e);
  if (!err.stage) return err;
  const rest = err.message.replace(/^image-build of VM \S+ failed at stage \S+: /, "");
  return new BangerError(err.code, `image build of ${name} failed at stage ${err.stage}: ${rest}`, { hint: err.hint, stage: err.stage, cause: e });
}

const gib = (bytes: number) => `${(bytes / GIB).toFixed(2)} GiB`;
