import { nameProblem } from "../../domain/names.js";
import type { Image, LifecycleEvent, Vm } from "../../domain/types.js";
import { ApiError, api, type ErrorBody } from "../api.js";
import { field, h, ms, replace, setError } from "../dom.js";
import { live } from "../live.js";
import type { Page } from "../page.js";
import { stageTable } from "./stages.js";

/** Which form field an API error belongs beside; the rest go above the submit button. */
function fieldOf(err: ErrorBody): string | undefined {
  if (err.field) return err.field;
  switch (err.code) {
    case "INVALID_NAME":
    case "VM_EXISTS":
      return "name";
    case "IMAGE_NOT_FOUND":
    case "IMAGE_BROKEN":
      return "image";
    default:
      return undefined;
  }
}

/** Aliases first (what people create from), then every image by name. */
export function imageChoices(images: Image[]): { value: string; label: string }[] {
  const aliases = images.flatMap((i) => i.aliases.map((a) => ({ value: a, label: `${a} → ${i.name}` }))).sort((a, b) => a.value.localeCompare(b.value));
  const names = images
    .map((i) => ({ value: i.name, label: `${i.name}${i.status === "broken" ? " (broken)" : ""}` }))
    .sort((a, b) => a.value.localeCompare(b.value));
  return [...aliases, ...names];
}

export const createPage: Page = (main) => {
  const list = h("datalist", { id: "image-choices" });
  const image = field("Image", h("input", { name: "image", list: "image-choices", required: true, autocomplete: "off" }), "an alias or an image name");
  const name = field(
    "Name",
    h("input", { name: "name", autocomplete: "off", spellcheck: "false", placeholder: "generated if empty" }),
    "lowercase letters, digits and '-'",
  );
  const nat = h("input", { type: "checkbox", name: "nat", id: "f-nat" });
  const noWait = h("input", { type: "checkbox", name: "noWait", id: "f-nowait" });
  const vcpus = field("vCPUs", h("input", { name: "vcpus", type: "number", inputmode: "numeric" }));
  const memory = field("Memory (MiB)", h("input", { name: "memoryMib", type: "number", inputmode: "numeric" }));
  const disk = field("Work disk (GiB)", h("input", { name: "workDiskGib", type: "number", inputmode: "numeric" }));
  const fields: Record<string, { input: HTMLInputElement | HTMLSelectElement | HTMLTextAreaElement; error: HTMLElement }> = {
    image,
    name,
    vcpus,
    memoryMib: memory,
    workDiskGib: disk,
  };
  const formError = h("div", { class: "form-error", role: "alert", hidden: true });
  const submit = h("button", { type: "submit", class: "primary" }, "Create");
  const progress = h("section", { class: "progress", "aria-live": "polite", hidden: true });

  // Same rules as the API (src/domain/names.ts), as the user types.
  name.input.addEventListener("input", () => {
    const v = name.input.value;
    const p = v === "" ? undefined : nameProblem(v);
    setError(name, p ? `VM name ${JSON.stringify(v)} ${p}` : undefined);
  });

  const num = (i: HTMLInputElement | HTMLSelectElement | HTMLTextAreaElement) => (i.value.trim() === "" ? undefined : Number(i.value));

  const form = h(
    "form",
    {
      class: "create",
      novalidate: true,
      onsubmit: (ev: Event) => {
        ev.preventDefault();
        void run();
      },
    },
    image.row,
    list,
    name.row,
    h("div", { class: "field checkbox" }, nat, h("label", { for: "f-nat" }, "NAT (outbound internet from the guest)")),
    h("div", { class: "row3" }, vcpus.row, memory.row, disk.row),
    h("div", { class: "field checkbox" }, noWait, h("label", { for: "f-nowait" }, "Return once booted, without waiting for SSH and services")),
    formError,
    h("div", { class: "actions" }, submit, h("span", { class: "muted small-text" }, "Reloading or closing this tab while a create runs cancels it.")),
  );

  async function run(): Promise<void> {
    for (const f of Object.values(fields)) setError(f, undefined);
    formError.hidden = true;
    const body: Record<string, unknown> = { image: image.input.value.trim() };
    if (name.input.value !== "") body.name = name.input.value;
    if (nat.checked) body.nat = true;
    if (noWait.checked) body.noWait = true;
    for (const [k, f] of [
      ["vcpus", vcpus],
      ["memoryMib", memory],
      ["workDiskGib", disk],
    ] as const) {
      const v = num(f.input);
      if (v !== undefined) body[k] = v;
    }
    submit.disabled = true;
    // The create belongs to this request: a reload or a closed tab cancels it (bangerd undoes it).
    const guard = (ev: BeforeUnloadEvent) => ev.preventDefault();
    window.addEventListener("beforeunload", guard);
    const known = new Set(live.vms.keys());
    const wanted = body.name as string | undefined;
    let vmName = wanted;
    const seen: LifecycleEvent[] = [];
    const t0 = performance.now();
    const title = h("h2", null, "Creating…");
    const clock = h("p", { class: "muted" });
    const tableSlot = h("div");
    replace(progress, title, clock, tableSlot);
    progress.hidden = false;
    const draw = () => {
      replace(clock, `${vmName ? `VM ${vmName}, ` : ""}${ms(performance.now() - t0)} so far`);
      replace(tableSlot, seen.length ? stageTable(seen, "Stages as they finish") : h("p", null, "waiting for the first stage…"));
    };
    // A generated name is not known until the VM row appears: the first new VM on this image.
    const offVm = live.onChange(() => {
      if (vmName) return;
      const fresh = [...live.vms.values()].find((v) => !known.has(v.name) && v.state === "creating");
      if (fresh) vmName = fresh.name;
      draw();
    });
    let settled = false;
    // The answer to the POST can overtake the last stage events on the event stream: keep
    // listening until the operation's `total` (or its undo) has arrived, or a few seconds more.
    const offStage = live.onStage((e) => {
      if (e.op !== "create" || !vmName || e.vmName !== vmName) return;
      seen.push(e);
      if (settled) replace(tableSlot, stageTable(seen, "Stages"));
      else draw();
      if (e.stage === "total") offStage();
    });
    const stopListening = () => setTimeout(offStage, 10_000);
    const tick = setInterval(draw, 500);
    draw();
    try {
      const { vm } = await api<{ vm: Vm }>("POST", "/vms", body);
      vmName = vm.name;
      draw();
      replace(title, `Created ${vm.name}`);
      replace(
        clock,
        `${vm.state} at ${vm.ip ?? "?"} after ${ms(performance.now() - t0)}. `,
        h("a", { href: `#/vms/${encodeURIComponent(vm.name)}` }, `Open ${vm.name}`),
      );
    } catch (e) {
      const err = e instanceof ApiError ? e.body : { code: "INTERNAL", message: (e as Error).message };
      const [first, ...rest] = err.message.split("\n");
      const details = [
        err.hint ? h("span", { class: "hint" }, `Hint: ${err.hint}`) : null,
        err.stage ? h("span", { class: "stage" }, `Failed stage: ${err.stage}`) : null,
        rest.length ? h("pre", { class: "console-tail", "aria-label": "Console tail" }, rest.join("\n")) : null,
      ];
      const target = fieldOf(err);
      const f = target ? fields[target] : undefined;
      if (f) {
        setError(f, first, ...details);
        f.input.focus();
      } else {
        replace(formError, h("strong", null, first), ...details);
        formError.hidden = false;
      }
      replace(title, seen.length ? "Create failed" : "Not created");
      replace(clock, `${vmName ? `VM ${vmName}: ` : ""}${err.code} after ${ms(performance.now() - t0)}; what it acquired is undone (below).`);
      if (!seen.length) progress.hidden = true;
    } finally {
      settled = true;
      window.removeEventListener("beforeunload", guard);
      clearInterval(tick);
      offVm();
      stopListening();
      if (!progress.hidden) replace(tableSlot, seen.length ? stageTable(seen, "Stages") : null);
      submit.disabled = false;
    }
  }

  replace(main, h("h1", null, "Create VM"), form, progress);
  let alive = true;
  void Promise.all([api<{ images: Image[] }>("GET", "/images"), api<{ config: Record<string, { value: unknown }> }>("GET", "/host")]).then(
    ([{ images }, host]) => {
      if (!alive) return;
      const choices = imageChoices(images);
      replace(
        list,
        choices.map((c) => h("option", { value: c.value }, c.label)),
      );
      if (!image.input.value && choices[0]) image.input.value = choices[0].value;
      const def = (k: string) => String(host.config[k]?.value ?? "");
      vcpus.input.setAttribute("placeholder", `default ${def("vcpus")}`);
      memory.input.setAttribute("placeholder", `default ${def("memory_mib")}`);
      disk.input.setAttribute("placeholder", `default ${def("work_disk_gib")}`);
    },
  );
  return () => {
    alive = false;
  };
};
