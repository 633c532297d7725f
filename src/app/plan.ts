import type { Logger } from "pino";
import { BangerError, asBangerError } from "../domain/errors.js";
import type { Store } from "../ports/store.js";
import type { BootPath, VmmKind } from "../domain/types.js";

export type Undo = () => Promise<void> | void;

export interface StageContext {
  /** Register the undo for what this stage just acquired. Call it right after acquiring. */
  onUndo(label: string, undo: Undo): void;
  signal: AbortSignal;
}

export interface Stage {
  name: string;
  run(ctx: StageContext): Promise<void | string>;
}

export interface StageTiming {
  stage: string;
  durationMs: number;
  detail?: string;
}

/**
 * Runs named stages in order, timing each and recording it as a lifecycle
 * event. Undos pile up as resources are acquired; on failure they run in
 * reverse, and the thrown error names the stage that failed.
 */
export class Plan {
  private readonly undos: { label: string; undo: Undo }[] = [];
  readonly timings: StageTiming[] = [];
  /** Undos that threw; above zero, what the plan acquired may still be held on the host. */
  undoFailures = 0;
  private opId?: number;
  /** The boot path this run takes, once known (a create decides it after choosing its source). */
  path?: BootPath;

  constructor(
    private readonly store: Store,
    private readonly log: Logger,
    private readonly vm: { id: string; name: string; vmm?: VmmKind },
    private readonly op: string,
    private readonly signal: AbortSignal = new AbortController().signal,
    /** Config `events_keep_ops`: how many of the VM's operations keep their events. */
    private readonly keepOps = 20,
  ) {}

  async run(stages: Stage[], describeFailure?: (stage: string, err: BangerError) => Promise<string | undefined>): Promise<void> {
    try {
      await this.runStages(stages, describeFailure);
    } finally {
      this.prune();
    }
  }

  private async runStages(stages: Stage[], describeFailure?: (stage: string, err: BangerError) => Promise<string | undefined>): Promise<void> {
    const t0 = performance.now();
    const planStarted = new Date();
    for (const stage of stages) {
      const started = new Date();
      const s0 = performance.now();
      try {
        if (this.signal.aborted) throw this.signal.reason;
        const detail = await stage.run({ onUndo: (label, undo) => this.undos.push({ label, undo }), signal: this.signal });
        const durationMs = performance.now() - s0;
        this.record(stage.name, started, durationMs, "ok", detail || undefined);
        this.timings.push({ stage: stage.name, durationMs, detail: detail || undefined });
        this.log.info({ vm: this.vm.name, stage: stage.name, op: this.op, ms: round(durationMs), detail: detail || undefined }, "stage done");
      } catch (raw) {
        const durationMs = performance.now() - s0;
        // Once cancelled, whatever a stage threw (an AbortError, a broken pipe) is a consequence; the reason is the cause.
        const err = asBangerError(this.signal.aborted ? this.signal.reason : raw);
        const extra = describeFailure ? await describeFailure(stage.name, err).catch(() => undefined) : undefined;
        this.record(stage.name, started, durationMs, "failed", err.message, err.code);
        this.log.error({ vm: this.vm.name, stage: stage.name, op: this.op, ms: round(durationMs), code: err.code, err: err.message }, "stage failed");
        await this.rollback();
        const message = `${this.op} of VM ${this.vm.name} failed at stage ${stage.name}: ${err.message}${extra ? `\n${extra}` : ""}`;
        throw new BangerError(err.code, message, { hint: err.hint, stage: stage.name, cause: raw });
      }
    }
    this.record("total", planStarted, performance.now() - t0, "ok");
  }

  /** Run every registered undo in reverse; failures are logged and do not stop the rest. */
  async rollback(): Promise<void> {
    while (this.undos.length > 0) {
      const { label, undo } = this.undos.pop()!;
      const s0 = performance.now();
      try {
        await undo();
        this.record(`undo:${label}`, new Date(), performance.now() - s0, "undone");
      } catch (e) {
        this.undoFailures++;
        this.log.error({ vm: this.vm.name, stage: `undo:${label}`, err: (e as Error).message }, "undo failed");
        this.record(`undo:${label}`, new Date(), performance.now() - s0, "failed", (e as Error).message);
      }
    }
  }

  /** Success: the acquired resources now belong to the VM, not to the plan. */
  commit(): void {
    this.undos.length = 0;
  }

  private record(stage: string, started: Date, durationMs: number, outcome: "ok" | "failed" | "undone", detail?: string, code?: string): void {
    try {
      // Taken lazily: a plan that records nothing uses up no id.
      this.opId ??= this.store.nextOpId();
      this.store.addEvent({
        vmId: this.vm.id,
        vmName: this.vm.name,
        opId: this.opId,
        op: this.op,
        stage,
        startedAt: started.toISOString(),
        durationMs: round(durationMs),
        outcome,
        detail,
        ...(this.vm.vmm ? { vmm: this.vm.vmm } : {}),
        ...(this.path ? { path: this.path } : {}),
        ...(code ? { code } : {}),
      });
    } catch (e) {
      this.log.warn({ vm: this.vm.name, stage, err: (e as Error).message }, "could not record lifecycle event");
    }
  }

  private prune(): void {
    try {
      this.store.pruneEvents(this.vm.id, this.keepOps);
    } catch (e) {
      this.log.warn({ vm: this.vm.name, err: (e as Error).message }, "could not prune lifecycle events");
    }
  }
}

function round(ms: number): number {
  return Math.round(ms * 100) / 100;
}
