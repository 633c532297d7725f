import type { Image, LifecycleEvent, Vm } from "../../domain/types.js";
import { ApiError, api, enc } from "../api.js";
import { copyable, h, localTime, replace } from "../dom.js";
import { live } from "../live.js";
import type { Page } from "../page.js";
import { vmActions } from "./actions.js";
import { consoleView } from "./console.js";
import { byOperation, stageTable } from "./stages.js";
import { stateBadge } from "./vms.js";

/** Whether each of the image's services answered in the VM's latest create or start. */
export function serviceStates(image: Image | undefined, events: LifecycleEvent[]): { name: string; port: number; answered: string }[] {
  const boot = byOperation(events).find((op) => op[0]?.op === "create" || op[0]?.op === "start") ?? [];
  const ssh = boot.find((e) => e.stage === "wait-ssh");
  const svc = boot.find((e) => e.stage === "wait-services");
  const services = image?.guest.services ?? [{ name: "ssh", port: 22 }];
  return services.map((s) => {
    const ev = s.port === 22 ? ssh : svc;
    let answered = "not checked (started without waiting)";
    if (ev?.outcome === "ok") answered = "answered";
    else if (ev?.outcome === "failed")
      answered = s.port === 22 || ev.detail?.includes(s.name) ? `did not answer: ${ev.detail?.split("\n")[0] ?? ""}` : "not reached";
    return { name: s.name, port: s.port, answered };
  });
}

/**
 * A guest's HTTP service through bangerd's proxy: its own port (a separate origin), no banger
 * cookie forwarded, opened without a reference back to this page.
 */
function proxyButton(vm: string, service: string): HTMLElement {
  const slot = h("span", { class: "proxy" });
  const btn: HTMLButtonElement = h(
    "button",
    {
      type: "button",
      class: "small",
      "aria-label": `Open ${service} of ${vm}`,
      onclick: async () => {
        btn.disabled = true;
        try {
          const { url } = await api<{ url: string }>("POST", `/vms/${enc(vm)}/services/${enc(service)}/proxy`, {});
          replace(slot, h("a", { href: url, target: "_blank", rel: "noopener noreferrer" }, `${service} (new tab)`));
          window.open(url, "_blank", "noopener,noreferrer");
        } catch (e) {
          replace(slot, h("span", { class: "error-text" }, e instanceof ApiError ? e.body.message : (e as Error).message));
        } finally {
          btn.disabled = false;
        }
      },
    },
    "Open",
  );
  return h("span", { class: "actions" }, btn, slot);
}

export const vmDetailPage: Page = (main, [name]) => {
  const head = h("div", { class: "page-head" });
  const summary = h("dl", { class: "kv" });
  const status = h("p", { class: "status", role: "status", "aria-live": "polite" });
  const services = h("section", { "aria-labelledby": "svc-h" });
  const ops = h("section", { "aria-labelledby": "ops-h" });
  const con = consoleView(name);
  let image: Image | undefined;
  let events: LifecycleEvent[] = [];
  // Seen on this page and then gone: deleted, from here, another tab or the CLI. The removal
  // event can arrive before the answer to this page's own DELETE, so it decides, not the answer.
  let seen = false;

  const kv = (pairs: [string, Node | string | undefined][]) =>
    pairs.filter(([, v]) => v !== undefined && v !== "").flatMap(([k, v]) => [h("dt", null, k), h("dd", null, v)]);

  function render(): void {
    const vm = live.vms.get(name);
    if (!vm) {
      replace(head, h("h1", null, name));
      replace(summary, h("dd", null, live.connected ? (seen ? "This VM was deleted." : "No VM by that name.") : "Loading…"));
      return;
    }
    seen = true;
    replace(head, h("h1", null, vm.name, " ", stateBadge(vm.state)), vmActions(vm, status));
    replace(
      summary,
      kv([
        ["Image", vm.imageName],
        ["IP", vm.ip ?? "—"],
        ["vCPUs / memory", `${vm.vcpus} / ${vm.memoryMib} MiB`],
        ["Work disk", `${vm.workDiskGib} GiB${vm.workSeedFallback ? " (empty: the image has no work-seed)" : ""}`],
        ["NAT", vm.nat ? "on" : "off"],
        ["VMM", `${vm.vmm}${vm.pid ? ` (pid ${vm.pid})` : ""}`],
        ["Created", h("time", { datetime: vm.createdAt }, localTime(vm.createdAt))],
        ["Last error", vm.lastError],
        ["SSH", copyable(`banger vm ssh ${vm.name}`, `Copy the ssh command for ${vm.name}`)],
      ]),
    );
    renderServices(vm);
  }

  function renderServices(vm: Vm): void {
    const rows = serviceStates(image, events);
    replace(
      services,
      h("h2", { id: "svc-h" }, "Services"),
      h(
        "table",
        null,
        h(
          "thead",
          null,
          h(
            "tr",
            null,
            ["Service", "Port", "Answered", "Open"].map((c) => h("th", { scope: "col" }, c)),
          ),
        ),
        h(
          "tbody",
          null,
          rows.map((r) =>
            h(
              "tr",
              null,
              h("th", { scope: "row" }, r.name),
              h("td", null, vm.ip ? `${vm.ip}:${r.port}` : String(r.port)),
              h("td", null, r.answered),
              h("td", null, r.port !== 22 && vm.state === "running" ? proxyButton(vm.name, r.name) : ""),
            ),
          ),
        ),
      ),
    );
  }

  function renderOps(): void {
    const groups = byOperation(events);
    replace(
      ops,
      h("h2", { id: "ops-h" }, "Operations"),
      groups.length === 0 ? h("p", { class: "muted" }, "No recorded operations.") : null,
      groups.map((g) => stageTable(g, `${g[0].op} at ${localTime(g[0].startedAt)}`)),
    );
    const vm = live.vms.get(name);
    if (vm) renderServices(vm);
  }

  async function load(): Promise<void> {
    try {
      const r = await api<{ vm: Vm; events: LifecycleEvent[] }>("GET", `/vms/${enc(name)}`);
      events = r.events;
      image = await api<{ image: Image }>("GET", `/images/${enc(r.vm.imageName)}`).then(
        (x) => x.image,
        () => undefined,
      );
      renderOps();
      render();
    } catch (e) {
      if (e instanceof ApiError && e.body.code === "VM_NOT_FOUND") replace(ops);
      else replace(status, (e as Error).message);
    }
  }

  replace(main, head, status, summary, services, ops, con.el);
  render();
  void load();
  const offChange = live.onChange(render);
  const offStage = live.onStage((e) => {
    if (e.vmName !== name) return;
    events = [...events, e];
    renderOps();
  });
  return () => {
    offChange();
    offStage();
    con.stop();
  };
};
