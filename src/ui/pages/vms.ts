import type { Vm } from "../../domain/types.js";
import { age, copyable, field, h, localTime, replace } from "../dom.js";
import { live } from "../live.js";
import type { Page } from "../page.js";
import { vmActions } from "./actions.js";

export function stateBadge(state: string): HTMLElement {
  return h("span", { class: `badge state-${state}` }, state);
}

function matches(vm: Vm, q: string): boolean {
  if (!q) return true;
  return [vm.name, vm.state, vm.imageName, vm.ip ?? ""].some((s) => s.toLowerCase().includes(q));
}

export const vmsPage: Page = (main) => {
  const filter = field("Filter", h("input", { type: "search", placeholder: "name, state, image or IP", autocomplete: "off" }));
  const status = h("p", { class: "status", role: "status", "aria-live": "polite" });
  const body = h("tbody");
  const count = h("p", { class: "muted" });
  const table = h(
    "table",
    { class: "vms" },
    h("caption", { class: "visually-hidden" }, "Virtual machines"),
    h(
      "thead",
      null,
      h(
        "tr",
        null,
        ["Name", "State", "Image", "IP", "vCPUs / memory", "NAT", "Age", "Created", "SSH", "Actions"].map((c) => h("th", { scope: "col" }, c)),
      ),
    ),
    body,
  );
  const render = () => {
    const q = filter.input.value.trim().toLowerCase();
    // A re-render replaces the rows: keep keyboard focus on the same control.
    const focused = body.contains(document.activeElement) ? document.activeElement?.getAttribute("aria-label") : undefined;
    const vms = [...live.vms.values()].sort((a, b) => b.createdAt.localeCompare(a.createdAt)).filter((v) => matches(v, q));
    replace(
      body,
      vms.map((vm) =>
        h(
          "tr",
          { "data-vm": vm.name },
          h("th", { scope: "row" }, h("a", { href: `#/vms/${encodeURIComponent(vm.name)}` }, vm.name)),
          h("td", null, stateBadge(vm.state), vm.lastError ? h("span", { class: "muted small-text", title: vm.lastError }, " !") : null),
          h("td", null, vm.imageName),
          h("td", null, vm.ip ?? "—"),
          h("td", null, `${vm.vcpus} / ${vm.memoryMib} MiB`),
          h("td", null, vm.nat ? "on" : "off"),
          h("td", null, age(vm.createdAt)),
          h("td", null, h("time", { datetime: vm.createdAt }, localTime(vm.createdAt))),
          h("td", null, copyable(`banger vm ssh ${vm.name}`, `Copy the ssh command for ${vm.name}`)),
          h("td", null, vmActions(vm, status)),
        ),
      ),
    );
    if (focused) body.querySelector<HTMLElement>(`[aria-label="${CSS.escape(focused)}"]`)?.focus();
    replace(
      count,
      !live.connected && live.vms.size === 0 ? "Loading…" : `${vms.length} of ${live.vms.size} VM${live.vms.size === 1 ? "" : "s"}`,
      live.vms.size === 0 && live.connected ? h("span", null, " — ", h("a", { href: "#/create" }, "create one")) : null,
    );
  };
  filter.input.addEventListener("input", render);
  replace(
    main,
    h("div", { class: "page-head" }, h("h1", null, "VMs"), h("a", { class: "button", href: "#/create" }, "Create VM")),
    filter.row,
    count,
    status,
    h("div", { class: "table-wrap" }, table),
  );
  render();
  const off = live.onChange(render);
  // Ages move on even when nothing changes.
  const tick = setInterval(render, 30_000);
  return () => {
    off();
    clearInterval(tick);
  };
};
