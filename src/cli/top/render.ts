import { pausedPoolLine } from "../../domain/pool-summary.js";
import type { Vm } from "../../domain/types.js";
import { bytes } from "../output.js";
import type { HostView, TopState } from "./model.js";

const STATE_ORDER = ["running", "creating", "starting", "stopping", "deleting", "failed", "stopped"];

/** 3d04h, 2h05m, 4m07s, 12s. */
export function duration(ms: number): string {
  const s = Math.max(0, Math.floor(ms / 1000));
  const d = Math.floor(s / 86400);
  const h = Math.floor((s % 86400) / 3600);
  const m = Math.floor((s % 3600) / 60);
  const pad = (n: number) => String(n).padStart(2, "0");
  if (d) return `${d}d${pad(h)}h`;
  if (h) return `${h}h${pad(m)}m`;
  if (m) return `${m}m${pad(s % 60)}s`;
  return `${s}s`;
}

/** The VMs in view order: active first, then by name. */
export function sortedVms(s: TopState): Vm[] {
  const rank = (v: Vm) => (STATE_ORDER.indexOf(v.state) + STATE_ORDER.length + 1) % (STATE_ORDER.length + 1);
  return [...s.vms.values()].sort((a, b) => rank(a) - rank(b) || a.name.localeCompare(b.name));
}

export function vmRows(s: TopState, now: number): string[][] {
  return sortedVms(s).map((v) => {
    const since = s.runningSince.get(v.id);
    return [
      v.name,
      v.state,
      since === undefined ? "-" : duration(now - since),
      String(v.vcpus),
      `${v.memoryMib}M`,
      v.ip ?? "-",
      v.imageName,
      v.ownerName ?? "root",
    ];
  });
}

export const VM_HEADERS = ["NAME", "STATE", "UPTIME", "VCPU", "MEM", "IP", "IMAGE", "OWNER"];

/** Lines about the host: bangerd, its memory, the host's memory, the pools, and the VMs' share. */
export function hostLines(h: HostView | undefined, s: TopState): string[] {
  const running = [...s.vms.values()].filter((v) => v.state === "running");
  const vcpus = running.reduce((n, v) => n + v.vcpus, 0);
  const memMib = running.reduce((n, v) => n + v.memoryMib, 0);
  const vms = `${s.vms.size} VMs, ${running.length} running: ${vcpus} vCPU, ${memMib} MiB`;
  if (!h) return [vms, "host: fetching…"];
  const mem = h.memory
    ? `host memory ${h.memory.availableMib === undefined ? "?" : `${h.memory.availableMib} MiB available`} of ${h.memory.totalMib} MiB`
    : "host memory unknown";
  const t = h.pool.taps;
  const dk = h.pool.disks;
  const disks = dk
    ? `${
        Object.entries(dk.sets)
          .map(([k, n]) => `${k} ${n}`)
          .join(", ") || "no sets"
      }; ${bytes(dk.bytes)}${dk.maxBytes ? ` of ${bytes(dk.maxBytes)}` : ""}`
    : "unknown";
  return [
    `bangerd ${h.version} (pid ${h.pid}, ${h.vmm}, up ${duration(h.uptimeS * 1000)}, RSS ${bytes(h.rssBytes)}); ${mem}`,
    vms,
    `pools  tap ${t ? `${t.idle} idle of ${t.size}` : "unknown"}  |  disk ${disks}  |  paused ${pausedPoolLine(h.pool.vms)}`,
  ];
}

function columns(headers: string[], rows: string[][]): string[] {
  const widths = headers.map((hd, i) => Math.max(hd.length, ...rows.map((r) => r[i]!.length)));
  return [headers, ...rows].map((r) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]!))).join("  "));
}

/** Cut to the terminal's width; the text here is ASCII but for names, whose code units we count. */
const fit = (line: string, cols: number) => (line.length > cols ? line.slice(0, Math.max(0, cols - 1)) + "…" : line);

/**
 * One frame of `banger top` for a `cols`×`rows` terminal at time `now`, as the lines to draw,
 * each at most `cols` wide and at most `rows` of them: the host first, the VM table, a footer
 * line. VMs that do not fit are counted instead.
 */
export function renderTop(s: TopState, size: { cols: number; rows: number }, now: number): string[] {
  const cols = Math.max(10, size.cols);
  const rows = Math.max(4, size.rows);
  const head = [...hostLines(s.host, s), ""];
  const table = s.vms.size === 0 ? ["no VMs; create one with `banger vm create --image debian`"] : columns(VM_HEADERS, vmRows(s, now));
  const footer = `${new Date(now).toTimeString().slice(0, 8)}  ${s.connected ? "live" : "connecting…"}${s.note ? `  ${s.note}` : ""}   q quits`;
  const room = rows - head.length - 1;
  let body = table;
  if (body.length > room) {
    const hidden = body.length - (room - 1);
    body = [...body.slice(0, Math.max(0, room - 1)), `… ${hidden} more VMs (a taller terminal shows them)`];
  }
  return [...head, ...body, footer].slice(0, rows).map((l) => fit(l, cols));
}

/** The plain table printed without a terminal. */
export function renderPlain(s: TopState, now: number): string {
  const table = s.vms.size === 0 ? ["no VMs"] : columns(VM_HEADERS, vmRows(s, now));
  return [...hostLines(s.host, s), "", ...table].join("\n");
}
