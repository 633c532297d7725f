import { execFileSync } from "node:child_process";
import { describe, expect, it } from "vitest";
import { splitRunOutput, wrapScript } from "../../src/adapters/channel/run.js";

describe("banger-channel RUN, host side", () => {
  it("collects lines until EXIT and keeps an unterminated tail for the next chunk", () => {
    const a = splitRunOutput("", "one\ntw");
    expect(a).toEqual({ lines: ["one"], pending: "tw" });
    const b = splitRunOutput(a.pending, "o\nEXIT 3\nHELLO\n");
    expect(b).toEqual({ lines: ["two"], pending: "", code: 3 });
    // A line that merely starts like the status is output.
    expect(splitRunOutput("", "EXIT soon\n")).toEqual({ lines: ["EXIT soon"], pending: "" });
  });

  it("wraps the script so a cut-short copy runs nothing, and reports the status however it ends", () => {
    const whole = wrapScript("echo first\necho second");
    // Whatever follows the wrapped script (the next session's bytes) is never read as commands.
    expect(execFileSync("sh", ["-s"], { input: Buffer.concat([whole, Buffer.from("echo leaked\n")]) }).toString()).toBe("first\nsecond\nEXIT 0\n");
    const failing = wrapScript("set -e\necho one\nfalse\necho never");
    let failedOut = "";
    try {
      execFileSync("sh", ["-s"], { input: failing });
    } catch (e) {
      failedOut = String((e as { stdout?: Buffer }).stdout ?? "");
    }
    expect(failedOut).toBe("one\nEXIT 1\n");
    // Cut inside the group: sh refuses the unfinished group before running any of it.
    const cut = whole.subarray(0, whole.indexOf("echo second") + 4);
    let out = "";
    let failed = false;
    try {
      out = execFileSync("sh", ["-s"], { input: cut, stdio: ["pipe", "pipe", "ignore"] }).toString();
    } catch (e) {
      failed = true;
      out = String((e as { stdout?: Buffer }).stdout ?? "");
    }
    expect(failed).toBe(true);
    // The trap still reports (a syntax error is status 2), but no line of the script ran.
    expect(out).toBe("EXIT 2\n");
  });
});
