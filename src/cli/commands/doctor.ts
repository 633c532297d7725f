import type { Command } from "commander";
import type { Check, DoctorReport } from "../../app/doctor.js";
import type { CliContext } from "../context.js";

function render(checks: Check[]): string {
  return checks.map((c) => `${c.status.padEnd(4)}  ${c.name.padEnd(22)} ${c.detail}${c.fix && c.status !== "PASS" ? `\n      fix: ${c.fix}` : ""}`).join("\n");
}

export function registerDoctor(program: Command, ctx: CliContext): void {
  program
    .command("doctor")
    .description("check this host, the daemon and every image; non-zero exit on any FAIL")
    .option("--fix", "as root: create the VMM user (vmm_user) and the API group (api_group) first")
    .action(async (o: { fix?: boolean }) => {
      if (o.fix) {
        const { config } = await ctx.cfg();
        const { fixHost } = await import("./host-setup.js");
        for (const line of fixHost({ vmmUser: config.vmm_user, apiGroup: config.api_group })) process.stderr.write(`fixed: ${line}\n`);
      }
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
