import { readFile } from "node:fs/promises";
import { basename, resolve } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { createHash } from "node:crypto";
import type { BuildEvent, BuildStep } from "../domain/build.js";
import { BangerError } from "../domain/errors.js";
import type { Image } from "../domain/types.js";
import type { CliContext } from "./context.js";
import { postNdjson } from "./ndjson.js";
import { ms } from "./output.js";

/** The daemon's default too (src/app/image-build.ts). */
const DEFAULT_TIMEOUT_MS = 30 * 60_000;

/** Scripts are read here and sent as content with their sha256: the daemon never opens a client path. */
async function readSteps(given: { kind: "script" | "run"; value: string }[]): Promise<BuildStep[]> {
  const steps: BuildStep[] = [];
  for (const s of given) {
    if (s.kind === "run") {
      steps.push({ kind: "run", command: s.value });
      continue;
    }
    const path = resolve(s.value);
    const content = await readFile(path, "utf8").catch((e: NodeJS.ErrnoException) => {
      throw new BangerError(
        "BAD_REQUEST",
        `--script ${s.value}: ${e.code === "ENOENT" ? "no such file" : e.code === "EISDIR" ? "is a directory" : e.message}`,
        {
          hint: "give the path of a script file on this machine; it is read here and sent to bangerd",
        },
      );
    });
    steps.push({ kind: "script", name: basename(path), content, sha256: createHash("sha256").update(content).digest("hex") });
  }
  return steps;
}

export async function runImageBuild(ctx: CliContext, o: Record<string, unknown>, given: { kind: "script" | "run"; value: string }[]): Promise<void> {
  const steps = await readSteps(given);
  const timeoutMs = (o.timeout as number | undefined) ?? DEFAULT_TIMEOUT_MS;
  const body = {
    from: o.from,
    name: o.name,
    steps,
    packages: typeof o.packages === "string" ? o.packages.split(",") : undefined,
    rootfsSize: o.rootfsSize,
    nat: o.nat === true,
    services: o.service,
    timeoutMs,
    promoteAs: o.promoteAs,
    workDiskGib: o.workDisk,
  };
  const human = !ctx.json;
  const events: BuildEvent[] = [];
  let builder: string | undefined;
  let result: Image | undefined;
  let failure: BangerError | undefined;
  const cancel = new AbortController();
  let presses = 0;
  const onInterrupt = () => {
    if (++presses > 1) process.exit(130);
    process.stderr.write(`\ncancelling the build of ${String(o.name)}; bangerd is undoing it (Ctrl-C again to stop waiting)\n`);
    cancel.abort();
  };
  process.on("SIGINT", onInterrupt);
  const client = ctx.client();
  try {
    await postNdjson(await client.socket(), "/images/build", body, {
      // The daemon's own deadline ends the build; this only catches a daemon that went silent past it.
      idleMs: timeoutMs + 5 * 60_000,
      signal: cancel.signal,
      onLine: (line) => {
        const e = line as BuildEvent;
        events.push(e);
        if (e.type === "builder") builder = e.vm;
        if (e.type === "result") result = e.image as Image;
        if (e.type === "error") failure = new BangerError(e.error.code as BangerError["code"], e.error.message, { hint: e.error.hint, stage: e.error.stage });
        if (human) render(e);
      },
    });
  } catch (e) {
    if (!cancel.signal.aborted) throw connectError(e, await client.socket());
    throw await afterCancel(ctx, String(o.name), builder);
  } finally {
    process.off("SIGINT", onInterrupt);
  }
  if (failure) throw failure;
  if (!result) throw new BangerError("INTERNAL", "bangerd ended the build stream without a result");
  const image = result;
  ctx.out(() => `built ${image.name}${image.aliases.length ? ` (${image.aliases.join(", ")})` : ""}; \`banger image show ${image.name}\` lists its stages`, {
    image,
    events: events.filter((e) => e.type === "stage"),
  });
}

function render(e: BuildEvent): void {
  if (e.type === "stage" && e.status === "done") {
    process.stderr.write(`  ✓ ${e.stage.padEnd(20)} ${ms(e.ms).padStart(9)}${e.detail ? `  ${e.detail.split("\n")[0]}` : ""}\n`);
  } else if (e.type === "stage" && e.stage.includes(":")) {
    process.stderr.write(`  → ${e.stage}\n`);
  } else if (e.type === "output") {
    process.stderr.write(`    | ${e.line}\n`);
  } else if (e.type === "error") {
    process.stderr.write(`  ✗ ${e.error.stage ?? "build"}\n`);
  }
}

function connectError(e: unknown, socket: string): unknown {
  const code = (e as NodeJS.ErrnoException).code ?? "";
  if (code === "ENOENT" || code === "ECONNREFUSED") {
    return new BangerError("DAEMON_UNREACHABLE", `bangerd is not running (socket ${socket}): start it with \`banger daemon start\``);
  }
  if (code === "ANSWER_TIMEOUT")
    return new BangerError("TIMEOUT", "bangerd went silent during the build", { hint: "check `banger daemon status` and the daemon log" });
  return e;
}

/** After Ctrl-C: wait for bangerd to finish undoing the builder VM, then say what is left. */
async function afterCancel(ctx: CliContext, name: string, builder: string | undefined): Promise<BangerError> {
  if (!builder) return new BangerError("CANCELLED", `build of ${name} cancelled before it started; nothing was left behind`);
  for (let i = 0; i < 600; i++) {
    const vm = await ctx
      .client()
      .call<{ vm: { state: string } }>("GET", `/vms/${encodeURIComponent(builder)}`)
      .then(
        (r) => r.vm,
        (e: BangerError) => (e.code === "VM_NOT_FOUND" ? null : undefined),
      );
    if (vm === null) return new BangerError("CANCELLED", `build of ${name} cancelled; nothing was left behind`);
    if (vm?.state === "failed")
      return new BangerError("CANCELLED", `build of ${name} cancelled; its builder VM ${builder} is failed`, { hint: `\`banger vm rm ${builder}\`` });
    await sleep(200);
  }
  return new BangerError("CANCELLED", `build of ${name} cancelled; bangerd is still undoing it`, { hint: `\`banger vm show ${builder}\` shows its state` });
}
