import { z } from "zod";
import { cidrProblem } from "../domain/cidr.js";
import { metricsBindVerdict } from "../domain/metrics-bind.js";
import { remoteBindVerdict } from "../domain/remote-bind.js";

/**
 * The config file schema. Every key is documented in docs/config.md; keep the
 * two in step. Defaults that depend on the environment (paths) are filled in
 * by load.ts, not here.
 */
export const webSchema = z
  .object({
    listen: z
      .string()
      .regex(/^[^:]+:\d{1,5}$/, "expected host:port, e.g. 127.0.0.1:7780, or an empty string to disable")
      .or(z.literal("")),
    enabled: z.boolean(),
    allow_remote: z.boolean(),
  })
  .strict();

/** Refused here, at load, so a daemon never starts exposing its metrics beyond loopback by accident. */
export const metricsSchema = z
  .object({
    listen: z
      .string()
      .regex(/^(\[[0-9a-fA-F:]+\]|[^:]+):\d{1,5}$/, "expected host:port, e.g. 127.0.0.1:9464, or an empty string to disable")
      .or(z.literal("")),
    allow_remote: z.boolean(),
  })
  .strict()
  .superRefine((m, ctx) => {
    const v = metricsBindVerdict({ listen: m.listen, allowRemote: m.allow_remote });
    if (v.refused) ctx.addIssue({ code: "custom", path: ["listen"], message: `${v.refused}; ${v.fix}` });
  });

const listenSchema = z
  .string()
  .regex(/^(\[[0-9a-fA-F:]+\]|[^:]+):\d{1,5}$/, "expected host:port, e.g. 127.0.0.1:7781, or an empty string to disable")
  .or(z.literal(""));

/** Like metrics: a remote API beyond loopback without allow_remote is refused at load. */
export const remoteSchema = z
  .object({ listen: listenSchema, allow_remote: z.boolean(), token_file: z.string() })
  .strict()
  .superRefine((r, ctx) => {
    const v = remoteBindVerdict({ listen: r.listen, allowRemote: r.allow_remote });
    if (v.refused) ctx.addIssue({ code: "custom", path: ["listen"], message: `${v.refused}; ${v.fix}` });
  });

/** The node agent (docs/scale-out.md "Node agent"). */
export const clusterSchema = z
  .object({
    enabled: z.boolean(),
    kubeconfig: z.string(),
    server: z.string().regex(/^(https?:\/\/[^\s]+)?$/, "expected an https:// URL of the API server, or empty"),
    token_file: z.string(),
    ca_file: z.string(),
    node_name: z
      .string()
      .regex(/^([a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?)?$/, "expected a Kubernetes node name (lowercase DNS subdomain), or empty for the hostname"),
    microvms: z.number().int().min(0).max(1024),
    max_parallel_creates: z.number().int().min(0).max(1024),
    wait_ssh: z.boolean(),
    resync_s: z.number().int().min(5).max(3600),
  })
  .strict();

export const natSchema = z
  .object({
    allow: z.array(z.string().refine((c) => cidrProblem(c) === undefined, { error: (i) => cidrProblem(String(i.input)) ?? "not a CIDR" })).max(256),
  })
  .strict();

/** Where `banger image pull` looks for a digest, and the budget of pulled images (docs/images.md, "Images by digest"). */
export const imagesSchema = z
  .object({
    sources: z
      .array(
        z
          .string()
          .regex(
            /^(oci:\/\/[^/\s]+\/\S+|https?:\/\/\S+|file:\/\/\/\S*|\/\S*)$/,
            "expected oci://host[:port]/repo, https://host/layout/ or an absolute layout directory",
          ),
      )
      .max(32),
    store_max_gib: z.number().min(0).max(65536),
    insecure: z.boolean(),
  })
  .strict();

/** A named cluster for `banger --context NAME` (docs/scale-out.md): MicroVMs through a Kubernetes API server. */
export const contextSchema = z
  .object({
    kubeconfig: z.string().min(1).optional(),
    kube_context: z.string().min(1).optional(),
    namespace: z
      .string()
      .regex(/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/, "expected a Kubernetes namespace name")
      .optional(),
  })
  .strict();

export const configSchema = z
  .object({
    vmm: z.enum(["firecracker", "qemu"]),
    firecracker_bin: z.string().min(1).optional(),
    jailer_bin: z.string().min(1).optional(),
    qemu_bin: z.string().min(1),
    qemu_accel: z.enum(["auto", "kvm", "tcg"]),
    state_dir: z.string().min(1),
    socket: z.string().min(1),
    ssh_key: z.string().min(1).optional(),
    vmm_user: z.string().regex(/^([a-z_][a-z0-9_-]{0,31})?$/, "expected a user name, or an empty string to run VMMs as the daemon's user"),
    api_group: z.string().regex(/^[a-z_][a-z0-9_-]{0,31}$/, "expected a group name"),
    host_setup: z.boolean(),
    bridge: z.string().regex(/^[a-zA-Z0-9_.-]{1,15}$/, "expected an interface name of at most 15 characters"),
    subnet: z.string().regex(/^\d{1,3}(\.\d{1,3}){3}\/(1[6-9]|2[0-9])$/, "expected an IPv4 CIDR between /16 and /29, e.g. 172.30.0.0/24"),
    uplink: z.string().min(1).optional(),
    tap_pool_size: z.number().int().min(0).max(64),
    disk_pool_size: z.number().int().min(0).max(16),
    disk_pool_max_gib: z.number().min(0).max(65536),
    vm_pool_size: z.number().int().min(0).max(16),
    vm_pool_max_memory_mib: z.number().int().min(0).max(4194304),
    vcpus: z.number().int().min(1).max(32),
    memory_mib: z.number().int().min(128).max(262144),
    work_disk_gib: z.number().int().min(1).max(2048),
    ssh_timeout_s: z.number().int().min(5).max(3600),
    service_timeout_s: z.number().int().min(5).max(3600),
    ready_push: z.boolean(),
    op_timeout_s: z.number().int().min(30).max(86400),
    log_level: z.enum(["trace", "debug", "info", "warn", "error"]),
    events_keep_ops: z.number().int().min(1).max(10000),
    console_log_max_mib: z.number().int().min(1).max(4096),
    snapshot: z.boolean(),
    web: webSchema,
    metrics: metricsSchema,
    nat: natSchema,
    images: imagesSchema,
    contexts: z.record(z.string().regex(/^[a-z0-9][a-z0-9_-]{0,62}$/, "expected a context name of a-z, 0-9, _ and -"), contextSchema).optional(),
    remote: remoteSchema,
    cluster: clusterSchema,
  })
  .strict();

export type Config = z.infer<typeof configSchema>;

/** Static defaults; path defaults come from the environment in load.ts. */
export const STATIC_DEFAULTS = {
  vmm: "firecracker",
  qemu_bin: "qemu-system-x86_64",
  qemu_accel: "auto",
  vmm_user: "banger-vmm",
  api_group: "banger",
  host_setup: true,
  bridge: "banger0",
  subnet: "172.30.0.0/24",
  tap_pool_size: 4,
  disk_pool_size: 2,
  disk_pool_max_gib: 20,
  vm_pool_size: 0,
  vm_pool_max_memory_mib: 4096,
  vcpus: 2,
  memory_mib: 1024,
  work_disk_gib: 10,
  ssh_timeout_s: 120,
  service_timeout_s: 180,
  ready_push: true,
  op_timeout_s: 900,
  log_level: "info",
  events_keep_ops: 20,
  console_log_max_mib: 8,
  snapshot: false,
  web: { listen: "127.0.0.1:7780", enabled: true, allow_remote: false },
  metrics: { listen: "", allow_remote: false },
  nat: { allow: [] as string[] },
  images: { sources: [] as string[], store_max_gib: 0, insecure: false },
  remote: { listen: "", allow_remote: false, token_file: "" },
  cluster: {
    enabled: false,
    kubeconfig: "",
    server: "",
    token_file: "",
    ca_file: "",
    node_name: "",
    microvms: 8,
    max_parallel_creates: 0,
    wait_ssh: true,
    resync_s: 30,
  },
} satisfies Partial<Config>;

export const KEY_DOCS: Record<string, string> = {
  vmm: "VMM driver: firecracker or qemu",
  firecracker_bin: "path to the firecracker binary; unset means `firecracker` on PATH",
  jailer_bin: "path to Firecracker's jailer; unset means `jailer` beside firecracker or on PATH, and none found runs firecracker unjailed (as vmm_user)",
  qemu_bin: "path or name of qemu-system-x86_64",
  qemu_accel: "auto (KVM when a guest can really run on it, else TCG), kvm, or tcg",
  state_dir: "SQLite database, images, VM dirs and logs",
  socket: "bangerd's Unix socket",
  ssh_key: "private key banger uses to reach guests; unset means an auto-managed ed25519 key",
  vmm_user: "unprivileged system user the VMM runs as (bangerd creates it at start as root); empty runs VMMs as the daemon's user (root)",
  api_group: "group whose members may use bangerd's socket (mode 0660 root:<group>; bangerd creates it at start as root)",
  host_setup:
    "at start as root, create vmm_user and api_group and grant vmm_user read-write on /dev/kvm and /dev/net/tun (group kvm or an ACL); false leaves that to configuration management",
  bridge: "host bridge the VMs' TAP devices attach to",
  subnet: "IPv4 subnet of the bridge; the first host address is the gateway",
  uplink: "interface NAT masquerades towards; unset means the default route's interface",
  tap_pool_size: "idle TAP devices kept warm; 0 disables the pool",
  disk_pool_size: "per-image sets of ready VM disks (rootfs copy + grown work disk) kept warm; 0 disables",
  disk_pool_max_gib: "cap on the warm disk pool's allocated disk space in GiB, all images together; 0 means no cap",
  vm_pool_size: "per image, VMs restored from its golden snapshot and kept paused, so a create only re-identifies and resumes one; 0 disables",
  vm_pool_max_memory_mib: "cap on the paused-VM pool's guest memory in MiB, all images together; 0 means no cap",
  vcpus: "default vCPUs per VM",
  memory_mib: "default memory per VM in MiB",
  work_disk_gib: "default size of each VM's /root disk in GiB",
  ssh_timeout_s: "how long create waits for SSH",
  service_timeout_s: "how long create waits for each guest service (opencode) after SSH",
  ready_push:
    "wait for banger-agent to report that sshd and the image's services listen (QEMU, images with the agent) before the SSH login and password checks; false polls as older images are",
  op_timeout_s: "overall deadline of one create or start (all stages); past it the operation is cancelled and undone",
  log_level: "bangerd log level",
  events_keep_ops: "lifecycle operations (create/start/stop) whose events are kept per VM",
  console_log_max_mib: "size at which a VM's console.log is rotated to console.log.1",
  snapshot:
    "keep a golden snapshot of every image current in the background (as `banger image snapshot` does), so creates restore instead of booting; per image: `image register --snapshot`",
  "web.listen": "host:port of the web UI, empty to disable",
  "web.enabled": "serve the web UI and the browser flavour of the API on web.listen",
  "web.allow_remote": "allow web.listen on a non-loopback address (plain HTTP: put TLS in front)",
  "metrics.listen": "host:port of a TCP listener serving GET /metrics (Prometheus text format), empty to disable; the socket serves it always",
  "metrics.allow_remote": "allow metrics.listen on a non-loopback address (the endpoint has no authentication)",
  "images.sources": 'where a digest this node lacks is pulled from, tried in order, e.g. ["oci://registry.lan:5000/banger"]',
  "images.store_max_gib": "disk budget of pulled images in GiB; a pull evicts least recently used pulled images no VM or alias uses; 0 means no budget",
  "images.insecure": "allow plain HTTP to image sources that are not loopback (digests are still checked, tags are not protected)",
  contexts:
    "named clusters for `banger --context NAME vm create|ls|rm`: [contexts.NAME] with kubeconfig (file; default $KUBECONFIG or ~/.kube/config), kube_context, namespace; `--context k8s` works without one",
  "remote.listen": "host:port of the remote API (the /v1 API over TCP with a bearer token), empty to disable",
  "remote.allow_remote": "allow remote.listen on a non-loopback address (plain HTTP: put TLS in front)",
  "remote.token_file": "file holding the remote API's bearer token; empty means <state_dir>/remote-token, created 0600 when missing",
  "cluster.enabled": "run the Kubernetes node agent: register this node and run the MicroVMs bound to it",
  "cluster.kubeconfig": "kubeconfig file the node agent uses; empty: cluster.server + cluster.token_file, else the in-cluster service account",
  "cluster.server": "API server URL when no kubeconfig is given",
  "cluster.token_file": "bearer token file for cluster.server",
  "cluster.ca_file": "CA bundle for cluster.server; empty uses the system's",
  "cluster.node_name": "this node's name in the cluster; empty means the hostname",
  "cluster.microvms": "how many MicroVMs this node takes (the banger.dev/microvm extended resource)",
  "cluster.max_parallel_creates": "how many MicroVM creates this node runs at once; the rest wait as Placed/Queued (0 = one per host CPU)",
  "cluster.wait_ssh": "a MicroVM is Running once SSH answers (false: once its VMM started, as vm create --no-wait)",
  "cluster.resync_s": "how often the node agent re-checks every MicroVM it runs and retries failed creates",
  "nat.allow": 'private or link-local IPv4 ranges NAT guests may reach anyway, e.g. ["10.1.2.0/24"]; empty denies them all',
};
