import { BangerError } from "../domain/errors.js";
import type { Vm } from "../domain/types.js";
import { createVm, type CreateDeps, type CreateInput } from "./create.js";
import { removeVm, type LifecycleDeps } from "./lifecycle.js";
import { addPeerings } from "./vm-net.js";

/** What a remote caller asks for under its own id: a create's input without the parts that are the caller's. */
export type ExternalSpec = Omit<CreateInput, "owner" | "external" | "noWait" | "cold" | "name">;

export interface EnsureOptions {
  /** A name for a new VM; when absent one is generated. An existing VM keeps its name. */
  name?: string;
  noWait?: boolean;
  owner?: { uid: number; name: string };
}

/** An id callers choose: printable, no '/', bounded. The node agent's are `k8s:<uid>`. */
const EXTERNAL_ID = /^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$/;

export function checkExternalId(id: string): string {
  if (!EXTERNAL_ID.test(id)) {
    throw new BangerError("BAD_REQUEST", `external id ${JSON.stringify(id)} is not 1-128 characters of letters, digits, '.', '_', ':' and '-'`, {
      hint: "use an id of your own system, e.g. k8s:<uid> or job-42",
    });
  }
  return id;
}

/** Key order and absent-vs-default fixed, so a retry of the same request compares equal. */
export function canonicalSpec(s: ExternalSpec): string {
  const sorted = (list?: readonly unknown[]) => (list && list.length > 0 ? list : undefined);
  return JSON.stringify({
    image: s.image,
    vcpus: s.vcpus,
    memoryMib: s.memoryMib,
    workDiskGib: s.workDiskGib,
    nat: s.nat ?? false,
    peers: sorted(s.peers ? [...s.peers].sort() : undefined),
    forwards: sorted(s.forwards),
    sshPublicKey: s.sshPublicKey,
  });
}

function conflict(id: string, vm: Vm): BangerError {
  return new BangerError("EXTERNAL_ID_CONFLICT", `VM ${vm.name} already has external id ${id}, made from another spec`, {
    hint: `DELETE /v1/vms/by-external-id/${id} first to replace it, or send the spec it was made from (GET shows it)`,
  });
}

interface InFlight {
  name?: string;
  spec: string;
  done: Promise<Vm>;
}

/**
 * VMs keyed by a caller's own id, so a retried, duplicated or reordered request never makes two
 * (docs/api.md "By external id"). Within this daemon a create in flight is joined, not repeated;
 * across restarts the unique `external_id` column is the key, and a create the daemon did not
 * finish is removed by the start-up reconcile, after which the next request makes it afresh.
 * One instance per daemon: the remote API and the node agent share it.
 */
export class ExternalVms {
  private readonly inflight = new Map<string, InFlight>();

  constructor(private readonly d: CreateDeps & LifecycleDeps) {}

  get(id: string): Vm | undefined {
    return this.d.store.getVmByExternalId(checkExternalId(id));
  }

  /** Whether a create for `id` is running now (its row may not exist yet). */
  creating(id: string): boolean {
    return this.inflight.has(id);
  }

  /**
   * The VM with this external id: the existing one, the one being created (joined), or a new one.
   * A different spec under the same id is EXTERNAL_ID_CONFLICT. The create is not tied to the
   * caller's connection: a caller that gives up retries the same request and joins it; it is
   * bounded by op_timeout_s and cancelled by `remove` or daemon shutdown.
   */
  async ensure(id: string, spec: ExternalSpec, opts: EnsureOptions = {}): Promise<{ vm: Vm; created: boolean }> {
    checkExternalId(id);
    const canon = canonicalSpec(spec);
    const existing = this.d.store.getVmByExternalId(id);
    if (existing) {
      if (existing.externalSpec !== undefined && existing.externalSpec !== canon) throw conflict(id, existing);
      return { vm: existing, created: false };
    }
    const running = this.inflight.get(id);
    if (running) {
      if (running.spec !== canon) {
        throw new BangerError("EXTERNAL_ID_CONFLICT", `a create with external id ${id} from another spec is in progress`, {
          hint: `wait for it, or DELETE /v1/vms/by-external-id/${id} to cancel it`,
        });
      }
      return { vm: await running.done, created: false };
    }
    const entry: InFlight = {
      name: opts.name,
      spec: canon,
      done: createVm(this.d, { ...spec, name: opts.name, noWait: opts.noWait, owner: opts.owner, external: { id, spec: canon } }),
    };
    this.inflight.set(id, entry);
    try {
      return { vm: await entry.done, created: true };
    } finally {
      if (this.inflight.get(id) === entry) this.inflight.delete(id);
    }
  }

  /**
   * Removes the VM with this id (a create in flight is cancelled and undone first). Absent is not
   * an error: `removed` is then undefined, so a repeated delete answers the same way.
   */
  async remove(id: string): Promise<{ removed?: string }> {
    checkExternalId(id);
    const running = this.inflight.get(id);
    if (running) {
      const name = running.name ?? this.d.store.getVmByExternalId(id)?.name;
      if (name) await removeVm(this.d, name, true).catch(() => undefined);
      await running.done.catch(() => undefined);
    }
    const vm = this.d.store.getVmByExternalId(id);
    if (!vm) return {};
    await removeVm(this.d, vm.name, true);
    return { removed: vm.name };
  }

  /**
   * Pairs the VM with this id with the VMs named `peers` that it is not paired with yet (a peer
   * that arrived after it was made); returns the names newly paired. The spec `ensure` compares
   * stays the one the VM was created from.
   */
  async peer(id: string, peers: readonly string[]): Promise<string[]> {
    const vm = this.get(id);
    if (!vm) throw new BangerError("VM_NOT_FOUND", `no VM has external id ${id}`);
    return addPeerings(this.d, vm.name, peers);
  }

  /** Every VM that carries an external id starting with `prefix` (the node agent's `k8s:`). */
  list(prefix: string): Vm[] {
    return this.d.store.listVms().filter((v) => v.externalId?.startsWith(prefix));
  }
}
