/**
 * Bookkeeping for the warm TAP pool. The host work is behind TapOps so the
 * state machine can be unit-tested; LinuxNetwork supplies the real `ip` calls.
 *
 * Every name is in at most one of: idle, busy, unclaimed (found on the host
 * but not yet adopted), creating, resetting. Acquire takes from `idle`
 * synchronously, with no await between the check and the mark, so
 * concurrent callers can never receive the same device. A busy device
 * remembers the VM holding it, and only that VM may give it back: a stale
 * release must not flap a device another VM has since taken.
 */

export interface TapClaim {
  tap: string;
  vmId: string;
}

import { BangerError } from "../../domain/errors.js";

export const POOL_PREFIX = "tap-pool-";
export const ON_DEMAND_PREFIX = "bt-";
const REFILL_DELAY_MS = 300;
const IFNAMSIZ = 15;

export interface TapOps {
  create(name: string): Promise<void>;
  delete(name: string): Promise<void>;
  /** Flush and re-attach a returned device; false when it no longer exists. */
  reset(name: string): Promise<boolean>;
}

export interface PoolLog {
  debug(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
}

export function isPoolName(name: string): boolean {
  return name.startsWith(POOL_PREFIX) && /^\d+$/.test(name.slice(POOL_PREFIX.length));
}

export function isBangerTap(name: string): boolean {
  return isPoolName(name) || name.startsWith(ON_DEMAND_PREFIX);
}

/** `bt-` plus the start of the VM id, kept within IFNAMSIZ and to safe characters. */
export function onDemandName(vmId: string, taken: (n: string) => boolean): string {
  const stem =
    vmId
      .toLowerCase()
      .replace(/[^a-z0-9]/g, "")
      .slice(0, 10) || "vm";
  const first = ON_DEMAND_PREFIX + stem;
  if (!taken(first)) return first;
  for (let i = 0; ; i++) {
    const suffix = i.toString(36);
    const name = ON_DEMAND_PREFIX + stem.slice(0, IFNAMSIZ - ON_DEMAND_PREFIX.length - suffix.length) + suffix;
    if (!taken(name)) return name;
  }
}

export class TapPool {
  private idle: string[] = [];
  /** device → the VM holding it */
  private readonly busy = new Map<string, string>();
  private readonly unclaimed = new Set<string>();
  private readonly creating = new Set<string>();
  private readonly resetting = new Set<string>();
  /** Until the daemon has said which pool devices VMs hold, refilling could collide with them. */
  private adopted = false;
  private closed = false;
  private refilling: Promise<void> | undefined;
  private refillTimer: NodeJS.Timeout | undefined;

  constructor(
    private readonly size: number,
    private readonly ops: TapOps,
    private readonly log: PoolLog,
  ) {}

  /** Acquires that found no idle device and made one on demand, with the pool enabled. */
  misses = 0;

  stats(): { idle: number; size: number; misses: number } {
    return { idle: this.idle.length, size: this.size, misses: this.misses };
  }

  idleNames(): string[] {
    return [...this.idle];
  }

  ownerOf(name: string): string | undefined {
    return this.busy.get(name);
  }

  private taken(name: string): boolean {
    return this.idle.includes(name) || this.busy.has(name) || this.unclaimed.has(name) || this.creating.has(name) || this.resetting.has(name);
  }

  private nextPoolName(): string {
    for (let i = 0; ; i++) if (!this.taken(POOL_PREFIX + i)) return POOL_PREFIX + i;
  }

  /**
   * Reconcile with the devices actually present. Pool devices we don't know
   * become unclaimed; idle ones that vanished are dropped. When nothing is
   * left to adopt, the pool may fill right away.
   */
  discovered(present: string[]): void {
    const here = new Set(present);
    this.idle = this.idle.filter((n) => here.has(n));
    for (const n of present) if (isPoolName(n) && !this.taken(n)) this.unclaimed.add(n);
    if (this.unclaimed.size === 0) this.adopted = true;
    this.scheduleRefill();
  }

  /**
   * Devices named in `inUse` stay busy; every other pool device present (or
   * found earlier) becomes idle, and idle ones beyond the pool size are deleted.
   */
  async adopt(inUse: TapClaim[], present: string[]): Promise<void> {
    for (const { tap: n, vmId } of inUse) {
      if (!isBangerTap(n)) continue;
      this.unclaimed.delete(n);
      this.idle = this.idle.filter((x) => x !== n);
      this.busy.set(n, vmId);
    }
    for (const n of present) if (isPoolName(n) && !this.taken(n)) this.unclaimed.add(n);
    const found = [...this.unclaimed].sort(byIndex);
    this.unclaimed.clear();
    this.adopted = true;
    const room = Math.max(0, this.size - this.idle.length);
    const keep = found.slice(0, room);
    // Moved to `resetting` synchronously so a concurrent refill or acquire sees the names as taken.
    for (const n of found) this.resetting.add(n);
    for (const n of found) {
      try {
        // A device left by an earlier daemon may have been detached or downed; reset makes it fit to hand out.
        if (keep.includes(n) && (await this.ops.reset(n))) {
          this.idle.push(n);
        } else if (!keep.includes(n)) {
          await this.ops.delete(n);
        }
      } finally {
        this.resetting.delete(n);
      }
    }
    this.idle.sort(byIndex);
    this.scheduleRefill();
  }

  /** Whether a device is held by a VM (acquired, or named busy at adoption). */
  isBusy(name: string): boolean {
    return this.busy.has(name);
  }

  async acquire(vmId: string): Promise<string> {
    const name = this.idle.shift();
    if (name !== undefined) {
      this.busy.set(name, vmId);
      this.scheduleRefill();
      return name;
    }
    if (this.size > 0) this.misses++;
    const fresh = onDemandName(vmId, (n) => this.taken(n));
    this.creating.add(fresh);
    try {
      await this.ops.create(fresh);
    } finally {
      this.creating.delete(fresh);
    }
    this.busy.set(fresh, vmId);
    this.scheduleRefill();
    return fresh;
  }

  /** Give back vmId's device. Releasing one already back is a no-op; releasing another VM's is refused. */
  async release(name: string, vmId: string): Promise<void> {
    const owner = this.busy.get(name);
    if (owner !== undefined && owner !== vmId) {
      throw new BangerError("INTERNAL", `TAP ${name} is held by VM ${owner}; VM ${vmId} may not release it`);
    }
    if (this.idle.includes(name) || this.creating.has(name) || this.resetting.has(name)) return;
    this.busy.delete(name);
    this.unclaimed.delete(name);
    if (isPoolName(name) && this.idle.length + this.creating.size + this.resetting.size < this.size && !this.closed) {
      this.resetting.add(name);
      let back = false;
      try {
        back = await this.ops.reset(name);
      } finally {
        this.resetting.delete(name);
      }
      if (back) this.idle.push(name);
      this.scheduleRefill();
      return;
    }
    this.resetting.add(name);
    try {
      await this.ops.delete(name);
    } finally {
      this.resetting.delete(name);
    }
  }

  /** True for names the pool wants to keep: idle, or being created or reset. */
  isReserved(name: string): boolean {
    return this.idle.includes(name) || this.creating.has(name) || this.resetting.has(name);
  }

  private scheduleRefill(): void {
    if (this.refilling || this.refillTimer || this.closed || !this.adopted) return;
    if (this.idle.length + this.creating.size + this.resetting.size >= this.size) return;
    // Not inline: spawning `ip` forks synchronously for milliseconds, and an acquire sits on
    // the create hot path. A short delay moves the refill past the pre-boot stages.
    this.refillTimer = setTimeout(() => {
      this.refillTimer = undefined;
      if (this.closed) return;
      this.refilling = this.refill().finally(() => {
        this.refilling = undefined;
      });
    }, REFILL_DELAY_MS);
    this.refillTimer.unref();
  }

  private async refill(): Promise<void> {
    while (!this.closed && this.idle.length + this.creating.size + this.resetting.size < this.size) {
      const name = this.nextPoolName();
      this.creating.add(name);
      try {
        await this.ops.create(name);
        // adopt() may have claimed this name for a VM while we were creating it.
        if (!this.busy.has(name)) this.idle.push(name);
      } catch (e) {
        // Acquire falls back to on-demand devices; the next acquire or release retries.
        this.log.warn({ err: e, tap: name }, "TAP pool refill failed");
        return;
      } finally {
        this.creating.delete(name);
      }
      this.log.debug({ tap: name, idle: this.idle.length }, "TAP pool refilled one device");
    }
  }

  /** Resolves once no refill is running; for tests and orderly shutdown. */
  async settled(): Promise<void> {
    while (this.refilling || this.refillTimer) {
      await (this.refilling ?? new Promise((r) => setTimeout(r, REFILL_DELAY_MS)));
    }
  }

  async close(): Promise<void> {
    this.closed = true;
    if (this.refillTimer) clearTimeout(this.refillTimer);
    this.refillTimer = undefined;
    await this.settled();
  }

  /** Forget everything (the host devices were removed wholesale) and allow use again. */
  clear(): void {
    this.idle = [];
    this.busy.clear();
    this.unclaimed.clear();
    this.adopted = false;
    this.closed = false;
  }
}

function byIndex(a: string, b: string): number {
  return Number(a.slice(POOL_PREFIX.length)) - Number(b.slice(POOL_PREFIX.length));
}
