import type { BuildEvent } from "../../domain/build.js";
import { h, ms, replace } from "../dom.js";

/** Lines kept in the page's log: a long apt run must not grow the DOM without bound. */
const MAX_LOG_LINES = 4000;

/**
 * The live view of one build: its stages as they start and finish (with their times) and the
 * guest's output in a scrolling log, fed the NDJSON lines of `POST /v1/images/build` in order.
 */
export class BuildProgress {
  readonly el: HTMLElement;
  readonly title = h("h2", { tabindex: "-1" }, "Building…");
  private readonly clock = h("p", { class: "muted build-clock" });
  private readonly rows = h("tbody");
  private readonly log = h("pre", { class: "console build-log", role: "log", "aria-label": "Guest output", tabindex: "0" });
  private readonly logNote = h("p", { class: "muted small-text" }, "The steps' output appears here once the builder answers over SSH.");
  private readonly lines: string[] = [];
  private readonly t0 = performance.now();
  private readonly tick: ReturnType<typeof setInterval>;
  private current?: { stage: string; row: HTMLElement; started: number };
  builder?: string;
  private settled = false;

  constructor(readonly imageName: string) {
    const table = h(
      "table",
      { class: "stages build-stages" },
      h("caption", null, "Stages"),
      h(
        "thead",
        null,
        h(
          "tr",
          null,
          ["Stage", "Time", "Outcome", "Detail"].map((c) => h("th", { scope: "col" }, c)),
        ),
      ),
      this.rows,
    );
    this.el = h(
      "section",
      { class: "progress", "aria-labelledby": "build-progress-title" },
      this.title,
      this.clock,
      table,
      h("h3", null, "Guest output"),
      this.logNote,
      this.log,
    );
    this.log.hidden = true;
    this.title.id = "build-progress-title";
    this.tick = setInterval(() => this.drawClock(), 500);
    this.drawClock();
  }

  private drawClock(extra = ""): void {
    if (this.settled) return;
    replace(this.clock, `${this.imageName}${this.builder ? ` (builder VM ${this.builder})` : ""}: ${ms(performance.now() - this.t0)} so far${extra}`);
  }

  private row(stage: string): HTMLElement {
    const found = this.rows.querySelector<HTMLElement>(`tr[data-stage="${CSS.escape(stage)}"]`);
    if (found) return found;
    const tr = h(
      "tr",
      { "data-stage": stage, "data-outcome": "running" },
      h("th", { scope: "row" }, stage),
      h("td", { class: "num" }),
      h("td", null, h("span", { class: "badge state-creating" }, "running")),
      h("td", { class: "detail" }),
    );
    this.rows.appendChild(tr);
    return tr;
  }

  private finish(tr: HTMLElement, outcome: "ok" | "failed" | "cancelled", time: number | undefined, detail?: string): void {
    tr.dataset.outcome = outcome;
    const [, timeCell, outcomeCell, detailCell] = tr.children;
    if (time !== undefined) replace(timeCell, ms(time));
    replace(outcomeCell, h("span", { class: `badge outcome-${outcome === "ok" ? "ok" : "failed"}` }, outcome));
    if (detail !== undefined) replace(detailCell, detail.split("\n")[0]);
  }

  push(e: BuildEvent): void {
    switch (e.type) {
      case "builder":
        this.builder = e.vm;
        this.el.dataset.builder = e.vm;
        this.drawClock();
        break;
      case "stage":
        if (e.status === "start") this.current = { stage: e.stage, row: this.row(e.stage), started: performance.now() };
        else {
          this.finish(this.row(e.stage), "ok", e.ms, e.detail);
          if (this.current?.stage === e.stage) this.current = undefined;
        }
        break;
      case "output":
        this.append(`${e.stream === "stderr" ? "! " : ""}${e.line}`);
        break;
      case "error":
        if (e.error.stage)
          this.finish(this.row(e.error.stage), "failed", this.current?.stage === e.error.stage ? performance.now() - this.current.started : undefined);
        break;
      case "result":
        break;
    }
  }

  private append(line: string): void {
    // Follow the end only when the reader is already there: scrolling up to read stays put.
    if (this.log.hidden) {
      this.log.hidden = false;
      this.logNote.remove();
    }
    const atEnd = this.log.scrollTop + this.log.clientHeight >= this.log.scrollHeight - 4;
    this.lines.push(line);
    if (this.lines.length > MAX_LOG_LINES) {
      this.lines.splice(0, this.lines.length - MAX_LOG_LINES);
      this.log.textContent = `${this.lines.join("\n")}\n`;
    } else this.log.appendChild(document.createTextNode(`${line}\n`));
    if (atEnd) this.log.scrollTop = this.log.scrollHeight;
  }

  /** The last `n` lines of guest output, for the error box beside the form. */
  tail(n: number): string[] {
    return this.lines.slice(-n);
  }

  /** Marks the stage that was running as cancelled (the API sends no line for it: the connection is gone). */
  cancelled(): void {
    if (this.current) this.finish(this.current.row, "cancelled", performance.now() - this.current.started);
    this.current = undefined;
  }

  settle(title: string, ...note: (Node | string)[]): void {
    this.settled = true;
    clearInterval(this.tick);
    replace(this.title, title);
    replace(this.clock, ...note, ` (${ms(performance.now() - this.t0)})`);
    if (this.log.hidden) replace(this.logNote, "No output from the guest's steps.");
  }

  dispose(): void {
    clearInterval(this.tick);
  }
}
