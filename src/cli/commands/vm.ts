import { spawnSync } from "node:child_process";
import { setTimeout as sleep } from "node:timers/promises";
import type { Command } from "commander";
import { BangerError, isCode } from "../../domain/errors.js";
import type { LifecycleEvent, Vm } from "../../domain/types.js";
import { sshArgs } from "../../adapters/ssh/args.js";
import type { SshTarget } from "../../ports/guest.js";
import { openStageFeed } from "../stage-events.js";
import type { CliContext } from "../context.js";
import { positiveInt } from "../parse.js";
import { keyValues, ms, table } from "../output.js";
import { registerChannelCommands, sshOverChannel } from "./vm-channel.js";
import { collectForward, forwardsOf, peersOf, registerVmPort } from "./vm-port.js";
import { renderAccess, type ServiceAccess } from "./vm-access.js";
import { callerPublicKey, callerSshTarget } from "../user-key.js";

const LONG_MS = 30 * 60_000;
const enc = encodeURIComponent;

/** One block per operation, so two starts show as two blocks. */
export function renderEvents(events: LifecycleEvent[]): string {
  const ops = [...new Set(events.map((e) => e.opId))];
  return ops
    .map((opId) => {
      const evs = events.filter((e) => e.opId === opId);
      return (
        `${evs[0]?.op} (${evs[0]?.startedAt.slice(0, 19).replace("T", " ")})\n` +
        table(
          ["  STAGE", "TIME", "OUTCOME", "DETAIL"],
          evs.map((e) => [`  ${e.stage}`, ms(e.durationMs), e.outcome, e.detail?.split("\n")[0]]),
        )
      );
    })
    .join("\n\n");
}

/** On a TTY, print each stage as the daemon records it while the long request runs. */
async function followStages(ctx: CliContext, findName: () => Promise<string | undefined>, op: string, after: number, done: { v: boolean }): Promise<void> {
  if (ctx.json || !process.stderr.isTTY) return;
  const seen = new Set<string>();
  let name: string | undefined;
  while (!done.v) {
    await sleep(250);
    name ??= await findName().catch(() => undefined);
    if (!name) continue;
    const res = await ctx
      .client()
      .call<{ events: LifecycleEvent[] }>("GET", `/vms/${enc(name)}/events`)
      .catch(() => undefined);
    for (const e of res?.events.filter((x) => x.op === op && x.opId > after) ?? []) {
      const key = `${e.stage}@${e.startedAt}`;
      if (seen.has(key) || e.stage === "total") continue;
      seen.add(key);
      printStage(e);
    }
  }
}

function printStage(e: LifecycleEvent): void {
  process.stderr.write(
    `  ${e.outcome === "ok" ? "✓" : e.outcome === "undone" ? "↩" : "✗"} ${e.stage.padEnd(20)} ${ms(e.durationMs).padStart(9)}${e.detail ? `  ${e.detail.split("\n")[0]}` : ""}\n`,
  );
}

/**
 * Runs a long request while printing its stages. For a create or start,
 * Ctrl-C cancels it: the request is dropped, bangerd undoes the operation,
 * and this waits until that is done so the message can say what is left.
 */
async function withStages<T>(ctx: CliContext, op: string, name: string | undefined, req: (signal: AbortSignal) => Promise<T>): Promise<T> {
  // On a TTY the stages come pushed on GET /v1/events; polling the VM's events is the fallback.
  const feed = ctx.json || !process.stderr.isTTY ? undefined : await openStageFeed(await ctx.client().socket(), op, name, printStage);
  const before = name ? undefined : new Set((await ctx.client().call<{ vms: Vm[] }>("GET", "/vms")).vms.map((v) => v.name));
  let found = name;
  const findName = async () => (found ??= feed?.name() ?? (await ctx.client().call<{ vms: Vm[] }>("GET", "/vms")).vms.find((v) => !before!.has(v.name))?.name);
  const done = { v: false };
  // Earlier operations of the same kind are history, not progress of this one.
  const after = name && !feed && !ctx.json && process.stderr.isTTY ? await lastOpId(ctx, name) : 0;
  const follower = feed ? Promise.resolve() : followStages(ctx, findName, op, after, done);
  const cancel = new AbortController();
  let presses = 0;
  const onInterrupt = () => {
    if (++presses > 1) process.exit(130);
    process.stderr.write(`\ncancelling ${op}${found ? ` of ${found}` : ""}; bangerd is undoing it (Ctrl-C again to stop waiting)\n`);
    cancel.abort();
  };
  const cancellable = op === "create" || op === "start";
  if (cancellable) process.on("SIGINT", onInterrupt);
  try {
    return await req(cancel.signal);
  } catch (e) {
    if (!cancel.signal.aborted) throw e;
    throw await cancelledOutcome(ctx, op, await findName().catch(() => found));
  } finally {
    if (cancellable) process.off("SIGINT", onInterrupt);
    done.v = true;
    await follower;
    await feed?.close();
  }
}

async function lastOpId(ctx: CliContext, name: string): Promise<number> {
  const res = await ctx
    .client()
    .call<{ events: LifecycleEvent[] }>("GET", `/vms/${enc(name)}/events`)
    .catch(() => undefined);
  return Math.max(0, ...(res?.events.map((e) => e.opId) ?? []));
}

/** After Ctrl-C: wait for bangerd to finish undoing, then say what is left of the VM. */
async function cancelledOutcome(ctx: CliContext, op: string, name: string | undefined): Promise<BangerError> {
  if (!name) return new BangerError("CANCELLED", `${op} cancelled before bangerd named the VM; \`banger vm ls\` shows what exists`);
  const transient = op === "create" ? "creating" : "starting";
  for (let i = 0; i < 600; i++) {
    const vm = await ctx
      .client()
      .call<{ vm: Vm }>("GET", `/vms/${enc(name)}`)
      .then(
        (r) => r.vm,
        (e: BangerError) => (e.code === "VM_NOT_FOUND" ? null : undefined),
      );
    if (vm === null) return new BangerError("CANCELLED", `${op} of ${name} cancelled; nothing was left behind`);
    if (vm && vm.state !== transient) {
      const hint = vm.state === "failed" ? `\`banger vm rm ${name}\` removes what is left` : undefined;
      return new BangerError("CANCELLED", `${op} of ${name} cancelled; the VM is ${vm.state}${vm.lastError ? ` (${vm.lastError})` : ""}`, { hint });
    }
    await sleep(200);
  }
  return new BangerError("CANCELLED", `${op} of ${name} cancelled; bangerd is still undoing it`, { hint: `\`banger vm show ${name}\` shows its state` });
}

function showVm(vm: Vm, events: LifecycleEvent[], op?: { op: string; startedAt: string }): string {
  const total = events.filter((e) => e.op === "create" && e.stage === "total").at(-1);
  return (
    keyValues([
      ["name", vm.name],
      ["id", vm.id],
      ["state", vm.state],
      ["in progress", op ? `${op.op} since ${op.startedAt.slice(11, 19)}` : undefined],
      ["last error", vm.lastError],
      ["owner", vm.ownerName ?? "root"],
      ["image", vm.imageName],
      ["vmm", vm.vmm],
      ["booted", vm.bootSource?.startsWith("snapshot ") ? `from ${vm.bootSource}` : vm.bootSource],
      ["ip", vm.ip],
      ["mac", vm.mac],
      ["tap", vm.tap],
      ["nat", vm.nat ? "yes" : "no"],
      ["pid", vm.pid],
      ["vcpus", vm.vcpus],
      ["memory", `${vm.memoryMib} MiB`],
      ["work disk", `${vm.workDiskGib} GiB${vm.workSeedFallback ? " (empty: image has no work-seed)" : " (from work-seed)"}`],
      ["dir", vm.dir],
      ["created", vm.createdAt],
      ["create time", total ? ms(total.durationMs) : undefined],
    ]) + (events.length ? `\n\n${renderEvents(events)}` : "")
  );
}

export function registerVm(program: Command, ctx: CliContext): void {
  const v = program.command("vm").description("create and manage microVMs");

  v.command("create")
    .description("create and boot a VM; waits until SSH and the image's services answer")
    .requiredOption("--image <image>", "image name or alias")
    .option("--name <name>", "VM name (default: generated)")
    .option("--nat", "let the guest reach the outside through NAT")
    .option("--vcpus <n>", "vCPUs", positiveInt)
    .option("--memory <mib>", "memory in MiB", positiveInt)
    .option("--work-disk <gib>", "size of the /root disk in GiB", positiveInt)
    .option("--no-wait", "return once the guest is started")
    .option("-p, --publish <spec>", "forward a host port to the guest, [address:]hostport:guestport (repeatable)", collectForward)
    .option("--publish-address <addr>", "host address for -p specs that name none (default 127.0.0.1)")
    .option("--peers <vms>", "comma-separated existing VMs this one may reach, and be reached by")
    .option("--cold", "boot even when the image has a snapshot")
    .action(async (o) => {
      const body = {
        peers: peersOf(o.peers),
        forwards: forwardsOf(o.publish, o.publishAddress),
        image: o.image,
        name: o.name,
        nat: Boolean(o.nat),
        vcpus: o.vcpus,
        memoryMib: o.memory,
        workDiskGib: o.workDisk,
        noWait: o.wait === false,
        sshPublicKey: await callerPublicKey(),
        cold: o.cold === true ? true : undefined,
      };
      const { vm } = await withStages(ctx, "create", o.name, (signal) => ctx.client().call<{ vm: Vm }>("POST", "/vms", body, LONG_MS, signal));
      const { events } = await ctx.client().call<{ events: LifecycleEvent[] }>("GET", `/vms/${enc(vm.name)}/events`);
      const total = events.filter((e) => e.op === "create" && e.stage === "total").at(-1);
      ctx.out(`created ${vm.name} (${vm.ip}) in ${total ? ms(total.durationMs) : "?"}; connect with \`banger vm ssh ${vm.name}\``, { vm, events });
    });

  v.command("ls")
    .description("list VMs (every user's; --mine for your own)")
    .option("--mine", "only the VMs you created")
    .option("--all", "every user's VMs (the default)")
    .action(async (o: { mine?: boolean }) => {
      const { vms } = await ctx.client().call<{ vms: Vm[] }>("GET", o.mine ? "/vms?mine=true" : "/vms");
      ctx.out(
        () =>
          vms.length === 0
            ? "no VMs; create one with `banger vm create --image debian`"
            : table(
                ["NAME", "OWNER", "STATE", "IMAGE", "IP", "VCPUS", "MEMORY", "NAT", "CREATED"],
                vms.map((x) => [
                  x.name,
                  x.ownerName ?? "root",
                  x.state,
                  x.imageName,
                  x.ip,
                  x.vcpus,
                  `${x.memoryMib}M`,
                  x.nat ? "yes" : "no",
                  x.createdAt.slice(0, 19).replace("T", " "),
                ]),
              ),
        { vms },
      );
    });

  v.command("show <name>")
    .description("details and stage timings of a VM, and how to reach its services")
    .option("--show-secret", "print the password of the VM's protected services (opencode)")
    .action(async (name: string, o: { showSecret?: boolean }) => {
      const res = await ctx.client().call<{ vm: Vm; events: LifecycleEvent[]; operation?: { op: string; startedAt: string } }>("GET", `/vms/${enc(name)}`);
      // Another user's VM: its details, not how to reach it.
      const access = await ctx
        .client()
        .call<{ services: ServiceAccess[] }>("GET", `/vms/${enc(name)}/access${o.showSecret ? "?secret=true" : ""}`)
        .catch((e: unknown) => {
          if (isCode(e, "FORBIDDEN") && !o.showSecret) return { services: [] };
          throw e;
        });
      ctx.out(() => showVm(res.vm, res.events, res.operation) + renderAccess(res.vm.name, access.services), { ...res, ...access });
    });

  v.command("events <name>")
    .description("lifecycle stage timings")
    .action(async (name: string) => {
      const { events } = await ctx.client().call<{ events: LifecycleEvent[] }>("GET", `/vms/${enc(name)}/events`);
      ctx.out(() => renderEvents(events), { events });
    });

  v.command("stop <name>")
    .description("power the guest off (ACPI / Ctrl-Alt-Del, then kill)")
    .action(async (name: string) => {
      const { vm } = await withStages(ctx, "stop", name, () => ctx.client().call<{ vm: Vm }>("POST", `/vms/${enc(name)}/stop`, {}, LONG_MS));
      ctx.out(`stopped ${vm.name}`, { vm });
    });

  v.command("start <name>")
    .description("boot a stopped VM again")
    .option("--no-wait", "return once the guest is started")
    .action(async (name: string, o: { wait?: boolean }) => {
      const { vm } = await withStages(ctx, "start", name, (signal) =>
        ctx.client().call<{ vm: Vm }>("POST", `/vms/${enc(name)}/start`, { noWait: o.wait === false }, LONG_MS, signal),
      );
      ctx.out(`started ${vm.name} (${vm.ip})`, { vm });
    });

  v.command("rm <name>")
    .description("remove a VM and everything it owns")
    .option("--force", "kill it if it is running, cancelling a create or start in progress")
    .action(async (name: string, o: { force?: boolean }) => {
      const res = await ctx
        .client()
        .call<{ removed: string; cancelled?: string }>("DELETE", `/vms/${enc(name)}${o.force ? "?force=true" : ""}`, undefined, LONG_MS);
      ctx.out(res.cancelled ? `cancelled the ${res.cancelled} of ${name} and removed it` : `removed ${name}`, res);
    });

  registerVmPort(v, ctx);

  v.command("ssh <name> [cmd...]")
    .description("ssh into the guest as root (banger key, per-VM known_hosts, no prompts)")
    .option("--vsock", "over the guest channel (banger-vsock), not the network: works with the guest's network down")
    .action(async (name: string, cmd: string[], o: { vsock?: boolean }) => {
      if (o.vsock) return sshOverChannel(ctx, name, cmd);
      const res = await ctx.client().call<{ target: SshTarget; knownHosts: string }>("GET", `/vms/${enc(name)}/ssh`);
      const target = await callerSshTarget(res.target, res.knownHosts, name);
      // Without a command ssh opens a login shell and allocates a TTY itself when stdin is one.
      // Generous: a TCG guest that just booted can take seconds to send its banner while opencode starts.
      const r = spawnSync("ssh", sshArgs(target, cmd, { connectTimeoutS: 15 }), { stdio: "inherit" });
      if (r.error) throw new BangerError("COMMAND_FAILED", `cannot run ssh: ${r.error.message}`, { hint: "apt-get install openssh-client" });
      process.exitCode = r.status ?? 1;
    });

  registerChannelCommands(v, ctx);

  v.command("logs <name>")
    .description("the guest's serial console")
    .option("-f, --follow", "keep printing new output")
    .action(async (name: string, o: { follow?: boolean }) => {
      let offset = 0;
      // The first request of a follow asks bangerd whether there is a live console at all (VM_NOT_RUNNING if not).
      let follow = Boolean(o.follow);
      for (;;) {
        const r = await ctx
          .client()
          .call<{ offset: number; size: number; data: string; running: boolean }>(
            "GET",
            `/vms/${enc(name)}/logs?offset=${offset}${follow ? "&follow=true" : ""}`,
          );
        follow = false;
        process.stdout.write(r.data);
        offset = r.offset;
        if (r.offset < r.size) continue;
        if (!o.follow) return;
        if (!r.running) {
          process.stderr.write(`(${name} is no longer running; end of its console)\n`);
          return;
        }
        await sleep(300);
      }
    });
}
