import type { LifecycleEvent } from "../../domain/types.js";
import { h, ms } from "../dom.js";

/** One operation's stages as a table plus a bar per stage, to scale with the slowest. */
export function stageTable(events: LifecycleEvent[], caption: string): HTMLElement {
  const stages = events.filter((e) => e.stage !== "total");
  const total = events.find((e) => e.stage === "total");
  const max = Math.max(1, ...stages.map((e) => e.durationMs));
  const bar = (e: LifecycleEvent) => {
    const b = h("span", { class: `bar outcome-${e.outcome}`, "aria-hidden": "true" });
    // CSSOM, not a style attribute: the CSP allows no inline styles.
    b.style.width = `${Math.max(0.5, (e.durationMs / max) * 100).toFixed(1)}%`;
    return h("span", { class: "bar-track" }, b);
  };
  return h(
    "table",
    { class: "stages" },
    h("caption", null, caption),
    h(
      "thead",
      null,
      h(
        "tr",
        null,
        ["Stage", "Time", "", "Outcome", "Detail"].map((c, i) =>
          h("th", { scope: "col", class: i === 2 ? "chart-col" : undefined }, i === 2 ? h("span", { class: "visually-hidden" }, "Chart") : c),
        ),
      ),
    ),
    h(
      "tbody",
      null,
      stages.map((e) =>
        h(
          "tr",
          { "data-stage": e.stage, "data-outcome": e.outcome },
          h("th", { scope: "row" }, e.stage),
          h("td", { class: "num" }, ms(e.durationMs)),
          h("td", { class: "chart-col" }, bar(e)),
          h("td", null, h("span", { class: `badge outcome-${e.outcome}` }, e.outcome)),
          h("td", { class: "detail" }, e.detail?.split("\n")[0] ?? ""),
        ),
      ),
    ),
    total
      ? h("tfoot", null, h("tr", null, h("th", { scope: "row" }, "total"), h("td", { class: "num" }, ms(total.durationMs)), h("td", { colspan: "3" })))
      : null,
  );
}

/** Events grouped by operation, newest first. */
export function byOperation(events: LifecycleEvent[]): LifecycleEvent[][] {
  const ops = new Map<number, LifecycleEvent[]>();
  for (const e of events) ops.set(e.opId, [...(ops.get(e.opId) ?? []), e]);
  return [...ops.values()].reverse();
}
