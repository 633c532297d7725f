import { describe, expect, it } from "vitest";
import type { Vm } from "../../src/domain/types.js";
import { applyEvent, emptyState } from "../../src/cli/top/model.js";
import { duration, renderPlain, renderTop } from "../../src/cli/top/render.js";

const T0 = Date.parse("2026-01-01T10:00:00.000Z");
const vm = (name: string, state: Vm["state"], over: Partial<Vm> = {}): Vm => ({
  id: `id-${name}`,
  name,
  imageId: "img",
  imageName: "debian",
  state,
  vmm: "firecracker",
  vcpus: 2,
  memoryMib: 512,
  workDiskGib: 2,
  nat: false,
  dir: `/v/${name}`,
  workSeedFallback: false,
  createdAt: new Date(T0).toISOString(),
  updatedAt: new Date(T0).toISOString(),
  ...over,
});
const host = {
  version: "1.2.3",
  vmm: "firecracker",
  pid: 42,
  rssBytes: 50 * 1048576,
  uptimeS: 3700,
  memory: { totalMib: 16000, availableMib: 12000 },
  pool: {
    taps: { idle: 3, size: 4, total: 5 },
    disks: { sets: { debian: 2 }, bytes: 1048576, maxBytes: 0, capped: [] },
    vms: { size: 0, members: {}, memoryMib: 0, maxMemoryMib: 0 },
  },
};

describe("banger top's model and rendering", () => {
  it("applies the event stream: hello, changes, removals; uptime counts from the transition to running", () => {
    const s = emptyState();
    expect(applyEvent(s, "hello", { vms: [vm("a", "running"), vm("pool-1", "running", { role: "pool" }), vm("b", "stopped")] })).toBe(true);
    expect([...s.vms.values()].map((v) => v.name).sort()).toEqual(["a", "b"]);
    expect(s.runningSince.get("id-a")).toBe(T0);
    // A later change of a running row (its IP) keeps the clock; a stop and start resets it.
    expect(applyEvent(s, "vm", { vm: vm("a", "running", { ip: "10.0.0.2", updatedAt: new Date(T0 + 5000).toISOString() }) })).toBe(false);
    expect(s.runningSince.get("id-a")).toBe(T0);
    applyEvent(s, "vm", { vm: vm("a", "stopped", { updatedAt: new Date(T0 + 6000).toISOString() }) });
    expect(s.runningSince.has("id-a")).toBe(false);
    applyEvent(s, "vm", { vm: vm("a", "running", { updatedAt: new Date(T0 + 9000).toISOString() }) });
    expect(s.runningSince.get("id-a")).toBe(T0 + 9000);
    expect(applyEvent(s, "vm-removed", { id: "id-b", name: "b" })).toBe(true);
    expect([...s.vms.keys()]).toEqual(["id-a"]);
    expect(applyEvent(s, "stage", { event: {} })).toBe(false);
  });

  it("draws the host, the VMs (active first) and a footer, within the terminal's size", () => {
    const s = emptyState();
    applyEvent(s, "hello", { vms: [vm("zeta", "stopped"), vm("alpha", "running", { ip: "172.30.0.2" }), vm("mid", "creating")] });
    s.host = host;
    const lines = renderTop(s, { cols: 140, rows: 20 }, T0 + 125_000);
    expect(lines[0]).toBe("bangerd 1.2.3 (pid 42, firecracker, up 1h01m, RSS 50.0 MiB); host memory 12000 MiB available of 16000 MiB");
    expect(lines[1]).toBe("3 VMs, 1 running: 2 vCPU, 512 MiB");
    expect(lines[2]).toMatch(/^pools {2}tap 3 idle of 4 {2}\| {2}disk debian 2; 1\.0 MiB {2}\| {2}paused off/);
    const table = lines.slice(4, 8);
    expect(table[0]).toMatch(/^NAME\s+STATE\s+UPTIME\s+VCPU\s+MEM\s+IP\s+IMAGE\s+OWNER$/);
    expect(table.slice(1).map((l) => l.split(/\s+/).slice(0, 3))).toEqual([
      ["alpha", "running", "2m05s"],
      ["mid", "creating", "-"],
      ["zeta", "stopped", "-"],
    ]);
    expect(lines.at(-1)).toMatch(/^\d\d:\d\d:\d\d {2}live {3}q quits$/);
  });

  it("fits a small terminal: lines cut to its width, VMs beyond its height counted", () => {
    const s = emptyState();
    applyEvent(s, "hello", { vms: Array.from({ length: 30 }, (_, i) => vm(`vm-${String(i).padStart(2, "0")}`, "running")) });
    s.host = host;
    const lines = renderTop(s, { cols: 40, rows: 12 }, T0);
    expect(lines).toHaveLength(12);
    expect(lines.every((l) => l.length <= 40)).toBe(true);
    expect(lines[0]!.endsWith("…")).toBe(true);
    expect(lines.at(-2)).toMatch(/^… 25 more VMs/);
  });

  it("prints a plain table with no escape codes, and says when there are no VMs", () => {
    const s = emptyState();
    applyEvent(s, "hello", { vms: [] });
    expect(renderPlain(s, T0)).toMatch(/no VMs$/);
    applyEvent(s, "vm", { vm: vm("a", "running") });
    const out = renderPlain(s, T0 + 61_000);
    expect(out).not.toContain("\x1b");
    expect(out).toMatch(/^a\s+running\s+1m01s\s+2\s+512M\s+-\s+debian\s+root$/m);
  });

  it("formats durations", () => {
    expect([0, 59_999, 60_000, 3_600_000, 90_061_000].map(duration)).toEqual(["0s", "59s", "1m00s", "1h00m", "1d01h"]);
  });
});
