import type { Command } from "commander";
import { DEFAULT_PUBLISH_ADDRESS, formatForward, parseForward, type ForwardSpec } from "../../domain/forwards.js";
import type { ForwardView } from "../../app/vm-net.js";
import type { CliContext } from "../context.js";
import { table } from "../output.js";

const enc = encodeURIComponent;

/** `-p` is repeatable: commander hands each value to this collector. */
export function collectForward(value: string, prev: string[] = []): string[] {
  return [...prev, value];
}

/** The create body's `forwards` from the `-p` values; an explicit address in a spec beats --publish-address. */
export function forwardsOf(specs: string[] | undefined, publishAddress?: string): ForwardSpec[] | undefined {
  if (!specs || specs.length === 0) return undefined;
  return specs.map((s) => parseForward(s, publishAddress ?? DEFAULT_PUBLISH_ADDRESS));
}

/** `--peers a,b` → ["a", "b"]. */
export function peersOf(list: string | undefined): string[] | undefined {
  if (list === undefined) return undefined;
  return list
    .split(",")
    .map((s) => s.trim())
    .filter(Boolean);
}

export function registerVmPort(vm: Command, ctx: CliContext): void {
  const p = vm.command("port").description("host ports relayed to a guest (bangerd listens; 127.0.0.1 unless published elsewhere)");

  p.command("add <vm> <spec>")
    .description("forward [address:]hostport:guestport, e.g. 18080:4096")
    .option("--publish-address <addr>", "host address to listen on when the spec names none", DEFAULT_PUBLISH_ADDRESS)
    .action(async (name: string, spec: string, o: { publishAddress: string }) => {
      const body = parseForward(spec, o.publishAddress);
      const { port } = await ctx.client().call<{ port: ForwardView }>("POST", `/vms/${enc(name)}/ports`, body);
      ctx.out(`forwarding ${formatForward(port)} of ${name}`, { port });
    });

  p.command("rm <vm> <hostport>")
    .description("stop forwarding a host port")
    .option("--address <addr>", "host address of the forward", DEFAULT_PUBLISH_ADDRESS)
    .action(async (name: string, hostPort: string, o: { address: string }) => {
      const res = await ctx.client().call("DELETE", `/vms/${enc(name)}/ports/${enc(hostPort)}?address=${enc(o.address)}`);
      ctx.out(`removed forward ${o.address}:${hostPort} of ${name}`, res);
    });

  p.command("ls <vm>")
    .description("list a VM's forwards")
    .action(async (name: string) => {
      const { ports } = await ctx.client().call<{ ports: ForwardView[] }>("GET", `/vms/${enc(name)}/ports`);
      ctx.out(
        () =>
          ports.length === 0
            ? `${name} has no port forwards; add one with \`banger vm port add ${name} 8080:80\``
            : table(
                ["HOST", "GUEST PORT", "LISTENING"],
                ports.map((f) => [`${f.hostAddress}:${f.hostPort}`, f.guestPort, f.listening ? "yes" : "no (port taken; see `banger doctor`)"]),
              ),
        { ports },
      );
    });
}
