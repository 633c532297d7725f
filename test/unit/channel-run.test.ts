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

  it("wraps the script so a cut-short copy runs nothing", () => {
    const whole = wrapScript("echo first\necho second");
    expect(execFileSync("sh", ["-s"], { input: whole }).toString()).toBe("first\nsecond\n");
    // Everything but the closing brace: sh refuses the unfinished group before running any of it.
    const cut = whole.subarray(0, whole.length - 3);
    let out = "";
    let failed = false;
    try {
      out = execFileSync("sh", ["-s"], { input: cut, stdio: ["pipe", "pipe", "ignore"] }).toString();
    } catch (e) {
      failed = true;
      out = String((e as { stdout?: Buffer }).stdout ?? "");
    }
    expect(failed).toBe(true);
    expect(out).toBe("");
  });
});
