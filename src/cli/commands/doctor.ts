import type { Command } from "commander";
import type { Check, DoctorReport } from "../../app/doctor.js";
import type { CliContext } from "../context.js";
import { BangerError } from "../../domain/errors.js";

function render(checks: Check[]): string {
  return checks.map((c) => `${c.status.padEnd(4)}  ${c.name.padEnd(22)} ${c.detail}${c.fix && c.status !== "PASS" ? `\n      fix: ${c.fix}` : ""}`).join("\n");
}

/**
 * `doctor --fix`: what bangerd itself sets up at start as root (host_setup), on demand and whatever
 * host_setup says: the accounts, device access for the VMM user, a reachable state dir.
 */
async function fixHost(ctx: CliContext): Promise<void> {
  if (process.getuid?.() !== 0) {
    throw new BangerError("BAD_REQUEST", "doctor --fix creates system accounts and must run as root", { hint: "sudo banger doctor --fix" });
  }
  const cfg = await ctx.cfg();
  const [{ LinuxHostSetup, VMM_DEVICES }, { ExecRunner }] = await Promise.all([
    import("../../adapters/host/setup.js"),
    import("../../adapters/exec/runner.js"),
  ]);
  const r = await new LinuxHostSetup(new ExecRunner()).ensure({
    vmmUser: cfg.config.vmm_user,
    apiGroup: cfg.config.api_group,
    devices: VMM_DEVICES,
    stateDir: cfg.paths.stateDir,
  });
  for (const line of r.done) process.stderr.write(`fixed: ${line}\n`);
  for (const p of r.problems) process.stderr.write(`not fixed: ${p.detail}\n      fix: ${p.fix}\n`);
  if (r.done.length > 0) process.stderr.write("restart bangerd (`banger daemon stop`, then start it again) so it uses them\n");
}

export function registerDoctor(program: Command, ctx: CliContext): void {
  program
    .command("doctor")
    .description("check this host, the daemon and every image; non-zero exit on any FAIL")
    .option("--fix", "as root, first set up what bangerd sets up at start: the VMM user, the API group, device access")
    .action(async (o: { fix?: boolean }) => {
      if (o.fix) await fixHost(ctx);
      let report: DoctorReport;
      try {
        report = await ctx.client().call<DoctorReport>("GET", "/doctor", undefined, 300_000);
      } catch (e) {
        if ((e as { code?: string }).code !== "DAEMON_UNREACHABLE") throw e;
        // Without the daemon the host checks still tell the user what to fix first.
        const cfg = await ctx.cfg();
        const [{ hostChecks }, { hostCheckConfig, hostFacts }] = await Promise.all([import("../../app/doctor.js"), import("../../adapters/host/facts.js")]);
        const checks = await hostChecks(hostCheckConfig(cfg), hostFacts(cfg));
        checks.push({ name: "daemon", status: "FAIL", detail: (e as Error).message, fix: "start it with `banger daemon start`" });
        checks.push({ name: "images", status: "WARN", detail: "not checked: the daemon owns the image store" });
        report = { checks, ok: false };
      }
      ctx.out(
        () => render(report.checks) + `\n\n${report.ok ? "no failures" : `${report.checks.filter((c) => c.status === "FAIL").length} check(s) failed`}`,
        report,
      );
      if (!report.ok) process.exitCode = 1;
    });
}
