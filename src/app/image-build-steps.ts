import { DETECT_PACKAGE_MANAGER, PACKAGE_COMMANDS, stepStage, type BuildEvent, type BuildStep, type PackageManager } from "../domain/build.js";
import { BangerError } from "../domain/errors.js";
import type { Image, Vm } from "../domain/types.js";
import type { Vmm } from "../ports/vmm.js";
import type { CreateDeps } from "./create.js";
import type { AppDeps } from "./deps.js";
import type { Stage } from "./plan.js";
import { handleOf } from "./vm-boot.js";
import { sshTarget } from "./vm-ready.js";

export type BuildDeps = CreateDeps & Pick<AppDeps, "shell" | "buildDisks">;

/** Lines of a failed step's output quoted in the error. */
const TAIL_LINES = 20;
const POWEROFF_ACK = "banger-poweroff-accepted";
/** After the guest accepted `poweroff`: its shutdown, under TCG and after heavy package work, can be slow. */
const POWEROFF_GRACE_MS = 90_000;
const POWEROFF_TIMEOUT_MS = 120_000;
/** The in-guest `sync; poweroff` over SSH; sshd going away ends it, so this only bounds a hung guest. */
const POWEROFF_SSH_MS = 60_000;

// A script is written to a private temp file and run from there, so it may be any language
// with a #! line (a file without one runs under the login shell); stdin carries the content.
const RUN_UPLOADED = 'f=$(mktemp /tmp/banger-build.XXXXXX) && cat >"$f" && chmod 700 "$f" && (cd /root && "$f"); rc=$?; rm -f "$f"; exit $rc';

export interface StepsContext {
  vm(): Vm;
  base: Image;
  vmm: Vmm;
  packages: string[];
  /** From the image's os label; undefined: the guest is asked. */
  manager: PackageManager | undefined;
  steps: BuildStep[];
  deadline: number;
  emit(e: BuildEvent): void;
  patch(p: Partial<Vm>): void;
}

/** wait-ssh, packages, each script and command in order, then a clean power-off. */
export function guestSteps(d: BuildDeps, c: StepsContext): Stage[] {
  const remaining = () => Math.max(1_000, c.deadline - Date.now());

  /** One command as root in the guest, its output on the stream; a non-zero exit fails the stage with the output's tail. */
  const inGuest = async (stage: string, what: string, command: string, signal: AbortSignal, input?: string): Promise<string> => {
    const tail: string[] = [];
    let lines = 0;
    const { code } = await d.shell.run(await sshTarget(d, c.vm()), command, {
      input,
      timeoutMs: remaining(),
      signal,
      onLine: (stream, line) => {
        lines++;
        tail.push(line);
        if (tail.length > TAIL_LINES) tail.shift();
        c.emit({ type: "output", stage, stream, line });
      },
    });
    if (code !== 0) {
      const shown = tail.length > 0 ? `\n--- last ${tail.length} lines of its output ---\n${tail.join("\n")}` : " (no output)";
      throw new BangerError("COMMAND_FAILED", `${what} exited ${code}${shown}`, {
        hint: "fix the step and build again; nothing of this build was kept",
      });
    }
    return `exit 0, ${lines} lines of output`;
  };

  const packages: Stage[] =
    c.packages.length === 0
      ? []
      : [
          {
            name: "packages",
            run: async ({ signal }) => {
              let manager = c.manager;
              if (!manager) {
                const found: string[] = [];
                await d.shell.run(await sshTarget(d, c.vm()), DETECT_PACKAGE_MANAGER, {
                  timeoutMs: 30_000,
                  signal,
                  onLine: (s, l) => s === "stdout" && found.push(l.trim()),
                });
                manager = (["apt", "apk", "xbps"] as const).find((m) => m === found[0]);
                if (!manager) {
                  throw new BangerError("BAD_REQUEST", `--packages: ${c.base.name} (os ${c.base.guest.os}) has none of apt-get, apk or xbps-install`, {
                    hint: "install with --run or --script instead",
                  });
                }
              }
              const command = PACKAGE_COMMANDS[manager](c.packages);
              await inGuest("packages", `\`${command}\``, command, signal);
              return `${manager}: ${c.packages.join(" ")}`;
            },
          },
        ];

  const steps: Stage[] = c.steps.map((s, i) => {
    const stage = stepStage(s, i);
    return {
      name: stage,
      run: ({ signal }) =>
        s.kind === "script" ? inGuest(stage, `script ${s.name}`, RUN_UPLOADED, signal, s.content) : inGuest(stage, `\`${s.command}\``, s.command, signal),
    };
  });

  return [
    {
      name: "wait-ssh",
      run: async ({ signal }) => {
        await d.guest.waitSsh(await sshTarget(d, c.vm()), Math.min(d.config.sshTimeoutMs, remaining()), signal);
      },
    },
    ...packages,
    ...steps,
    {
      name: "poweroff",
      run: async ({ signal }) => {
        const h = handleOf(c.vm(), c.vmm);
        if (!h) throw new BangerError("INTERNAL", `builder ${c.vm().name} has no VMM process recorded`);
        // Acknowledged before the sync, which after package work under TCG can take longer than any fixed guess:
        // once the guest said yes, the VMM's exit is awaited for the whole grace period.
        let asked = false;
        await d.shell
          .run(await sshTarget(d, c.vm()), `echo ${POWEROFF_ACK}; sync; ${c.vmm.guestStopCommand}`, {
            timeoutMs: POWEROFF_SSH_MS,
            signal,
            onLine: (_s, line) => (asked ||= line.includes(POWEROFF_ACK)),
          })
          .catch(() => signal.throwIfAborted());
        const res = await c.vmm.stop(h, { timeoutMs: POWEROFF_TIMEOUT_MS, graceMs: asked ? POWEROFF_GRACE_MS : 0 });
        c.patch({ pid: undefined, pidStart: undefined });
        return `${asked ? `guest ${c.vmm.guestStopCommand}` : "guest unreachable"}; ended by ${res.how} after ${res.ms} ms`;
      },
    },
  ];
}
