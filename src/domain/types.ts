import type { BuildInfo } from "./build.js";
import type { VmState } from "./vm-state.js";

export type VmmKind = "firecracker" | "qemu";

export type ArtifactRole = "kernel" | "initrd" | "rootfs" | "work_seed";

export interface Artifact {
  role: ArtifactRole;
  /** Absolute path inside the managed image store. */
  path: string;
  sha256: string;
  sizeBytes: number;
}

export interface GuestService {
  name: string;
  port: number;
  /** Per-service readiness timeout; cold starts of some services are slow. */
  timeoutMs?: number;
}

/** Where every banger image installs its guest agent (guest/agent, docs/agent.md). */
export const GUEST_AGENT_PATH = "/usr/local/sbin/banger-agent";

export interface GuestMeta {
  os: string;
  services: GuestService[];
  /** The rootfs has banger-agent (GUEST_AGENT_PATH), found at registration: its readiness is pushed, not polled. */
  agent?: boolean;
  /** Keep a golden snapshot of this image current (`image register --snapshot`); the config's `snapshot` does it for all. */
  snapshot?: boolean;
}

export type ImageStatus = "ok" | "broken";

export interface Image {
  id: string;
  name: string;
  status: ImageStatus;
  /** Why the image is broken (missing file, checksum mismatch). */
  statusDetail?: string;
  bootArgs: string;
  defaultVcpus?: number;
  defaultMemoryMib?: number;
  defaultWorkDiskGib?: number;
  guest: GuestMeta;
  artifacts: Artifact[];
  aliases: string[];
  createdAt: string;
  /** Set on images made by `banger image build`: parent, step digests, stage times. */
  build?: BuildInfo;
  /** `sha256:<hex>` of the canonical boot-set manifest (domain/image-digest.ts); set by the store on every image. */
  digest?: string;
  /** Where `image pull` got it; only pulled images are evicted under `images.store_max_gib`. */
  pulledFrom?: string;
  /** Last pull, create or ensure that named it (LRU eviction order). */
  lastUsedAt?: string;
}

export type { VmState };

export interface Vm {
  id: string;
  name: string;
  imageId: string;
  imageName: string;
  state: VmState;
  vmm: VmmKind;
  vcpus: number;
  memoryMib: number;
  workDiskGib: number;
  nat: boolean;
  ip?: string;
  mac?: string;
  tap?: string;
  pid?: number;
  /** Kernel start time of the VMM process (/proc/<pid>/stat field 22), to tell a reused pid apart. */
  pidStart?: number;
  dir: string;
  vsockCid?: number;
  /** True when the work disk was made empty because the image has no work-seed. */
  workSeedFallback: boolean;
  /**
   * "builder": the throw-away VM of an image build or golden snapshot; `vm ls` leaves it out while it runs.
   * "pool": a paused clone waiting in the paused-VM pool (app/vm-pool.ts) for a create to claim it; never listed.
   */
  role?: "builder" | "pool";
  /** How the last create brought the guest up: "snapshot <id>", or "cold: <why no snapshot was used>". */
  bootSource?: string;
  createdAt: string;
  updatedAt: string;
  lastError?: string;
  /** Who created it (the API caller); unset for VMs made before ownership was recorded: root's. */
  ownerUid?: number;
  ownerName?: string;
  /**
   * The id a remote caller gave this VM (`PUT /v1/vms/by-external-id/:id`; the node agent's `k8s:<uid>`),
   * unique among VMs, and the canonical JSON of the spec it asked for (a retry with another spec is a conflict).
   */
  externalId?: string;
  externalSpec?: string;
}

export type StageOutcome = "ok" | "failed" | "undone";

/** How a create got its guest: a cold boot, a restore of the golden snapshot, or a paused pool member. */
export type BootPath = "cold" | "snapshot" | "pool";

export interface LifecycleEvent {
  vmId: string;
  vmName: string;
  /** One run of a plan (a create, start, stop): its stages, undos and `total` share it. */
  opId: number;
  op: string;
  stage: string;
  startedAt: string;
  durationMs: number;
  outcome: StageOutcome;
  detail?: string;
  /**
   * Carried on `GET /v1/events` only, not kept in the store: the VMM, the boot path of a create,
   * start or restore, and the error code of a failed stage (what the metrics count by).
   */
  vmm?: VmmKind;
  path?: BootPath;
  code?: string;
}

export function artifactOf(image: Image, role: ArtifactRole): Artifact | undefined {
  return image.artifacts.find((a) => a.role === role);
}
