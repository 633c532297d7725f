import type { Vm } from "../../domain/types.js";
import { ApiError, api, enc } from "../api.js";
import { confirmDialog, h, replace } from "../dom.js";

/** Start, stop and delete buttons for one VM; the outcome (or the API's error) goes to `status`. */
export function vmActions(vm: Vm, status: HTMLElement, after?: (action: string) => void): HTMLElement {
  const run = async (btn: HTMLButtonElement, action: string, call: () => Promise<unknown>) => {
    btn.disabled = true;
    replace(status, `${action} ${vm.name}…`);
    try {
      await call();
      replace(status, `${action} ${vm.name}: done`);
      after?.(action);
    } catch (e) {
      const err = e instanceof ApiError ? e.body : { message: (e as Error).message, hint: undefined };
      replace(status, h("span", { class: "error-text" }, `${action} ${vm.name} failed: ${err.message}`, err.hint ? ` (${err.hint})` : ""));
    } finally {
      btn.disabled = false;
    }
  };
  const busy = ["creating", "starting", "stopping", "deleting"].includes(vm.state);
  const buttons: HTMLElement[] = [];
  if (vm.state === "stopped") {
    const b: HTMLButtonElement = h(
      "button",
      {
        type: "button",
        class: "small",
        "aria-label": `Start ${vm.name}`,
        onclick: () => void run(b, "start", () => api("POST", `/vms/${enc(vm.name)}/start`, {})),
      },
      "Start",
    );
    buttons.push(b);
  }
  if (vm.state === "running") {
    const b: HTMLButtonElement = h(
      "button",
      {
        type: "button",
        class: "small",
        "aria-label": `Stop ${vm.name}`,
        onclick: () => void run(b, "stop", () => api("POST", `/vms/${enc(vm.name)}/stop`, {})),
      },
      "Stop",
    );
    buttons.push(b);
  }
  const del: HTMLButtonElement = h(
    "button",
    {
      type: "button",
      class: "small danger",
      "aria-label": `Delete ${vm.name}`,
      onclick: async () => {
        const force = vm.state === "running" || busy;
        const ok = await confirmDialog(
          `Delete ${vm.name}?`,
          h(
            "p",
            null,
            `The VM and its disks are removed for good.`,
            force ? ` It is ${vm.state}: ${vm.state === "running" ? "its VMM is killed" : "that operation is cancelled first"}.` : "",
          ),
          "Delete",
        );
        if (ok) await run(del, "delete", () => api("DELETE", `/vms/${enc(vm.name)}${force ? "?force=true" : ""}`));
      },
    },
    "Delete",
  );
  buttons.push(del);
  return h("span", { class: "actions" }, buttons);
}
