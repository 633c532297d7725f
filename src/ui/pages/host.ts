import { pausedPoolLine, type PausedPoolView } from "../../domain/pool-summary.js";
import { api } from "../api.js";
import { bytes, h, replace } from "../dom.js";
import type { Page } from "../page.js";

interface Check {
  name: string;
  status: "PASS" | "WARN" | "FAIL";
  detail: string;
  fix?: string;
}

interface HostReply {
  version: string;
  vmm: string;
  pid: number;
  rssBytes: number;
  uptimeS: number;
  config: Record<string, { value: unknown; source: string }>;
  web?: Check;
  pool: {
    taps?: { idle: number; size: number; total: number };
    disks?: { sets: Record<string, number>; bytes: number; maxBytes: number; capped: string[] };
    vms?: PausedPoolView;
  };
}

export const hostPage: Page = (main) => {
  const about = h("dl", { class: "kv" }, h("dd", null, "Loading…"));
  const doctor = h("div", null, h("p", { class: "muted" }, "Running checks…"));
  const config = h("div");
  let alive = true;
  replace(
    main,
    h("h1", null, "Host"),
    h("section", { "aria-labelledby": "about-h" }, h("h2", { id: "about-h" }, "bangerd and pools"), about),
    h("section", { "aria-labelledby": "doc-h" }, h("h2", { id: "doc-h" }, "Doctor"), doctor),
    h("section", { "aria-labelledby": "cfg-h" }, h("h2", { id: "cfg-h" }, "Config in effect"), config),
  );
  void api<HostReply>("GET", "/host").then((r) => {
    if (!alive) return;
    const t = r.pool.taps;
    const d = r.pool.disks;
    const sets = d
      ? Object.entries(d.sets)
          .map(([k, n]) => `${k}: ${n}`)
          .join(", ") || "no sets"
      : "unknown";
    replace(
      about,
      [
        ["Version", `bangerd ${r.version}`],
        ["Process", `pid ${r.pid}, up ${r.uptimeS} s, RSS ${bytes(r.rssBytes)}`],
        ["VMM", r.vmm],
        ["TAP pool", t ? `${t.idle} idle of ${t.size}; ${t.total} banger TAPs` : "unknown"],
        [
          "Warm disks",
          d
            ? `${sets}; ${bytes(d.bytes)}${d.maxBytes ? ` of ${bytes(d.maxBytes)}` : " (no cap)"}${d.capped.length ? `; capped: ${d.capped.join(", ")}` : ""}`
            : "unknown",
        ],
        ["Paused VMs", pausedPoolLine(r.pool.vms)],
      ].flatMap(([k, v]) => [h("dt", null, k), h("dd", null, v)]),
    );
    replace(
      config,
      h(
        "table",
        null,
        h(
          "thead",
          null,
          h(
            "tr",
            null,
            ["Key", "Value", "Source"].map((c) => h("th", { scope: "col" }, c)),
          ),
        ),
        h(
          "tbody",
          null,
          Object.entries(r.config).map(([k, v]) =>
            h("tr", null, h("th", { scope: "row" }, h("code", null, k)), h("td", null, h("code", null, JSON.stringify(v.value))), h("td", null, v.source)),
          ),
        ),
      ),
    );
  });
  void api<{ ok: boolean; checks: Check[] }>("GET", "/doctor").then(
    (r) => {
      if (!alive) return;
      replace(
        doctor,
        h("p", null, r.ok ? "No failures." : `${r.checks.filter((c) => c.status === "FAIL").length} check(s) failed.`),
        h(
          "table",
          { class: "doctor" },
          h(
            "thead",
            null,
            h(
              "tr",
              null,
              ["Status", "Check", "Detail", "Fix"].map((c) => h("th", { scope: "col" }, c)),
            ),
          ),
          h(
            "tbody",
            null,
            r.checks.map((c) =>
              h(
                "tr",
                null,
                h("td", null, h("span", { class: `badge check-${c.status}` }, c.status)),
                h("th", { scope: "row" }, c.name),
                h("td", { class: "detail" }, c.detail),
                h("td", null, c.status === "PASS" ? "" : (c.fix ?? "")),
              ),
            ),
          ),
        ),
      );
    },
    (e: Error) => replace(doctor, h("p", { class: "error-text" }, `doctor: ${e.message}`)),
  );
  return () => {
    alive = false;
  };
};
