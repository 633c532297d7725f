import { spawnSync } from "node:child_process";
import { callerSshTarget } from "../user-key.js";
import { existsSync } from "node:fs";
import { dirname, join } from "node:path";
import type { Command } from "commander";
import { sshArgs } from "../../adapters/ssh/args.js";
import { BangerError } from "../../domain/errors.js";
import { proxyCommandLine } from "../../domain/proxy-command.js";
import type { SshTarget } from "../../ports/guest.js";
import type { CliContext } from "../context.js";

const enc = encodeURIComponent;
/** A TCG guest that just booted can take seconds to send its banner. */
const SSH_CONNECT_TIMEOUT_S = 15;

/** banger-vsock beside this CLI's bundle (build/bundle), else the one on PATH. */
function companion(): string[] {
  const beside = join(dirname(process.argv[1] ?? ""), "banger-vsock.cjs");
  return existsSync(beside) ? [process.execPath, beside] : ["banger-vsock"];
}

/** `banger-vsock --socket S [--tcp IP:22] <vm> <port>` as an ssh ProxyCommand. */
export function proxyCommand(socket: string, vm: string, port: number, o: { tcp?: string; verbose?: boolean } = {}): string {
  const argv = [...companion(), "--socket", socket, ...(o.tcp ? ["--tcp", o.tcp] : []), ...(o.verbose ? ["-v"] : []), vm, String(port)];
  return proxyCommandLine(argv);
}

function runSsh(args: string[]): void {
  const r = spawnSync("ssh", args, { stdio: "inherit" });
  if (r.error) throw new BangerError("COMMAND_FAILED", `cannot run ssh: ${r.error.message}`, { hint: "apt-get install openssh-client" });
  // ssh passes the remote exit status through (255: ssh itself failed); a signal as a shell reports it.
  process.exitCode = r.status ?? 128 + (r.signal === "SIGINT" ? 2 : r.signal === "SIGTERM" ? 15 : 9);
}

/** `vm ssh --vsock`: ssh over the guest channel only (banger-vsock as ProxyCommand). */
export async function sshOverChannel(ctx: CliContext, name: string, cmd: string[]): Promise<void> {
  const res = await ctx.client().call<{ target: SshTarget; knownHosts: string }>("GET", `/vms/${enc(name)}/ssh`);
  const target = await callerSshTarget(res.target, res.knownHosts, name);
  const proxy = proxyCommand(await ctx.socket(), name, 22);
  runSsh(sshArgs(target, cmd, { connectTimeoutS: SSH_CONNECT_TIMEOUT_S, proxyCommand: proxy }));
}

/** Each word quoted for the guest's shell, so the command's argv arrives as given. */
export function remoteCommand(argv: string[]): string {
  return argv.map((a) => (/^[\w@%+=:,./-]+$/.test(a) ? a : `'${a.replace(/'/g, `'\\''`)}'`)).join(" ");
}

export function registerChannelCommands(v: Command, ctx: CliContext): void {
  v.command("exec <name> <cmd...>")
    .description("run one command in the guest as root (its exit code is ours), over SSH via the IP or the guest channel, whichever answers first")
    .option("-v, --verbose", "say on stderr which path answered")
    .action(async (name: string, cmd: string[], o: { verbose?: boolean }) => {
      const res = await ctx.client().call<{ target: SshTarget; knownHosts: string }>("GET", `/vms/${enc(name)}/ssh?for=exec`);
      const target = await callerSshTarget(res.target, res.knownHosts, name);
      const proxy = proxyCommand(await ctx.socket(), name, 22, { tcp: `${target.host}:${target.port ?? 22}`, verbose: o.verbose });
      runSsh(sshArgs(target, [remoteCommand(cmd)], { connectTimeoutS: SSH_CONNECT_TIMEOUT_S, proxyCommand: proxy }));
    });
}
