import { parseDurationMs, parseSize, validatePackages, type BuildEvent, type BuildStep } from "../../domain/build.js";
import { validateImageName, validateName } from "../../domain/names.js";
import type { Image, Vm } from "../../domain/types.js";
import { ApiError, api, enc, type ErrorBody } from "../api.js";
import { field, h, replace, setError, uid } from "../dom.js";
import { postNdjson } from "../ndjson.js";
import type { Page } from "../page.js";
import { sha256Hex } from "../sha256.js";
import { BuildProgress } from "./build-progress.js";
import { imageChoices } from "./create.js";

type Input = HTMLInputElement | HTMLSelectElement | HTMLTextAreaElement;
type Field = { row: HTMLElement; input: Input; error: HTMLElement };

/** The problem the domain rule finds in `value`, as its message, or undefined. The same rules the API applies. */
function problem(check: () => unknown): string | undefined {
  try {
    check();
    return undefined;
  } catch (e) {
    return (e as Error).message;
  }
}

/** "jq, curl git" → ["jq", "curl", "git"], as the CLI splits `--packages` (commas), spaces allowed too. */
export function splitPackages(text: string): string[] {
  return text
    .split(/[,\s]+/)
    .map((p) => p.trim())
    .filter(Boolean);
}

interface StepEditor {
  el: HTMLElement;
  read(): Promise<BuildStep>;
}

function scriptStep(n: number, remove: () => void): StepEditor {
  const name = field(`Script ${n} file name`, h("input", { autocomplete: "off", spellcheck: "false", value: `step-${n}.sh` }));
  const content = field(
    `Script ${n}`,
    h("textarea", { rows: 8, spellcheck: "false", class: "code", placeholder: "#!/bin/sh\nset -e\n…" }),
    "runs as root in the builder VM; its exit status decides the step",
  );
  const file = h("input", { type: "file", class: "file-pick", "aria-label": `Load script ${n} from a file` });
  file.addEventListener("change", () => {
    const f = file.files?.[0];
    if (!f) return;
    void f.text().then((t) => {
      content.input.value = t;
      name.input.value = f.name;
    });
  });
  const el = h(
    "fieldset",
    { class: "step", "data-kind": "script" },
    h("legend", null, `Step ${n}: script`),
    name.row,
    content.row,
    h("div", { class: "actions" }, file, removeButton(`Remove step ${n}`, remove)),
  );
  return {
    el,
    async read() {
      const text = content.input.value;
      return { kind: "script", name: name.input.value.trim(), content: text, sha256: await sha256Hex(text) };
    },
  };
}

function runStep(n: number, remove: () => void): StepEditor {
  const cmd = field(
    `Command ${n}`,
    h("input", { autocomplete: "off", spellcheck: "false", class: "code", placeholder: "apt-get install -y jq" }),
    "one shell command line",
  );
  const el = h("fieldset", { class: "step", "data-kind": "run" }, h("legend", null, `Step ${n}: command`), cmd.row, removeButton(`Remove step ${n}`, remove));
  return { el, read: () => Promise.resolve({ kind: "run", command: cmd.input.value }) };
}

function removeButton(label: string, onclick: () => void): HTMLElement {
  return h("button", { type: "button", class: "small danger", onclick }, label);
}

/** `#/images/build`: the `banger image build` form, with the build's NDJSON stream shown as it runs. */
export const buildPage: Page = (main) => {
  const list = h("datalist", { id: uid("bases") });
  const f = {
    from: field("Base image", h("input", { name: "from", list: list.id, required: true, autocomplete: "off" }), "an alias or an image name"),
    name: field(
      "New image name",
      h("input", { name: "name", required: true, autocomplete: "off", spellcheck: "false" }),
      "e.g. deb-tools-1; builds are immutable",
    ),
    packages: field(
      "Packages",
      h("input", { name: "packages", autocomplete: "off", spellcheck: "false" }),
      "installed first with the base's package manager, e.g. jq, curl",
    ),
    rootfsSize: field("Root file system size", h("input", { name: "rootfsSize", autocomplete: "off", placeholder: "keep the base's" }), "grow only, e.g. 4G"),
    workDiskGib: field("Work disk (GiB)", h("input", { name: "workDiskGib", type: "number", min: 1, inputmode: "numeric" })),
    timeout: field("Timeout", h("input", { name: "timeout", autocomplete: "off", placeholder: "30m" }), "e.g. 45m, 90s or 2h"),
    promoteAs: field("Promote as", h("input", { name: "promoteAs", autocomplete: "off", spellcheck: "false" }), "optional alias pointed at the new image"),
  };
  const nat = h("input", { type: "checkbox", name: "nat", id: uid("nat") });
  const stepsList = h("div", { class: "steps" });
  const stepsError = h("p", { class: "field-error", id: uid("steps-error"), role: "alert", hidden: true });
  const steps: StepEditor[] = [];
  const renumber = () => {
    // Numbers (and so labels) follow the order: rebuild the editors' legends by position.
    stepsList.querySelectorAll("legend").forEach((l, i) => (l.textContent = l.textContent!.replace(/^Step \d+/, `Step ${i + 1}`)));
  };
  const addStep = (make: typeof scriptStep) => {
    const editor: StepEditor = make(steps.length + 1, () => {
      steps.splice(steps.indexOf(editor), 1);
      editor.el.remove();
      renumber();
      addScript.focus();
    });
    steps.push(editor);
    stepsList.appendChild(editor.el);
    editor.el.querySelector<HTMLElement>("textarea, input")?.focus();
  };
  const addScript = h("button", { type: "button", onclick: () => addStep(scriptStep) }, "Add script");
  const addRun = h("button", { type: "button", onclick: () => addStep(runStep) }, "Add command");
  const formError = h("div", { class: "form-error", role: "alert", hidden: true });
  const submit = h("button", { type: "submit", class: "primary" }, "Build");
  const cancel = h("button", { type: "button", class: "danger", disabled: true }, "Cancel build");
  const progressSlot = h("div");

  // As the user types: the domain's own checks (src/domain/names.ts, src/domain/build.ts).
  const live1 = (x: Field, check: (v: string) => unknown) =>
    x.input.addEventListener("input", () => {
      const v = x.input.value.trim();
      setError(x, v === "" ? undefined : problem(() => check(v)));
    });
  live1(f.name, validateImageName);
  live1(f.promoteAs, (v) => validateName(v, "alias"));
  live1(f.packages, (v) => validatePackages(splitPackages(v)));
  live1(f.rootfsSize, parseSize);
  live1(f.timeout, parseDurationMs);

  const fieldFor = (err: ErrorBody): Field | "steps" | undefined => {
    const key = err.field ?? (err.code === "IMAGE_NOT_FOUND" || err.code === "IMAGE_BROKEN" ? "from" : undefined);
    if (key === "steps") return "steps";
    if (key === "timeoutMs") return f.timeout;
    return key && key in f ? f[key as keyof typeof f] : undefined;
  };

  const form = h(
    "form",
    {
      class: "create build",
      novalidate: true,
      onsubmit: (ev: Event) => {
        ev.preventDefault();
        void run();
      },
    },
    h("div", { class: "grid2" }, f.from.row, f.name.row),
    list,
    h(
      "fieldset",
      { class: "steps-box", "aria-describedby": stepsError.id },
      h("legend", null, "Steps"),
      h("p", { class: "field-help" }, "Scripts and commands run as root in the builder VM, in this order, after the packages."),
      stepsList,
      stepsError,
      h("div", { class: "actions" }, addScript, addRun),
    ),
    f.packages.row,
    h("div", { class: "row3" }, f.rootfsSize.row, f.workDiskGib.row, f.timeout.row),
    f.promoteAs.row,
    h("div", { class: "field checkbox" }, nat, h("label", { for: nat.id }, "NAT (outbound internet for the builder, e.g. for packages)")),
    formError,
    h(
      "div",
      { class: "actions" },
      submit,
      cancel,
      h("span", { class: "muted small-text" }, "Cancelling, leaving this page or closing the tab undoes the build."),
    ),
  );

  let aborter: AbortController | undefined;
  cancel.addEventListener("click", () => aborter?.abort());

  const num = (x: Field) => (x.input.value.trim() === "" ? undefined : Number(x.input.value));

  async function run(): Promise<void> {
    for (const x of Object.values(f)) setError(x, undefined);
    stepsError.hidden = true;
    formError.hidden = true;
    const body: Record<string, unknown> = {
      from: f.from.input.value.trim(),
      name: f.name.input.value.trim(),
      steps: await Promise.all(steps.map((s) => s.read())),
    };
    if (f.packages.input.value.trim()) body.packages = splitPackages(f.packages.input.value);
    if (f.rootfsSize.input.value.trim()) body.rootfsSize = f.rootfsSize.input.value.trim();
    if (num(f.workDiskGib) !== undefined) body.workDiskGib = num(f.workDiskGib);
    if (f.timeout.input.value.trim()) {
      const t = f.timeout.input.value.trim();
      const bad = problem(() => parseDurationMs(t));
      if (bad) {
        setError(f.timeout, bad);
        f.timeout.input.focus();
        return;
      }
      body.timeoutMs = parseDurationMs(t);
    }
    if (f.promoteAs.input.value.trim()) body.promoteAs = f.promoteAs.input.value.trim();
    if (nat.checked) body.nat = true;

    const ac = new AbortController();
    aborter = ac;
    submit.disabled = true;
    cancel.disabled = false;
    const guard = (ev: BeforeUnloadEvent) => ev.preventDefault();
    window.addEventListener("beforeunload", guard);
    const progress = new BuildProgress(String(body.name));
    replace(progressSlot, progress.el);
    let result: Image | undefined;
    let failure: ErrorBody | undefined;
    let started = false;
    try {
      await postNdjson("/images/build", body, ac.signal, (line) => {
        const e = line as BuildEvent;
        started = true;
        progress.push(e);
        if (e.type === "result") result = e.image as Image;
        if (e.type === "error") failure = e.error;
      });
      if (!result && !failure) failure = { code: "INTERNAL", message: "bangerd ended the build stream without a result" };
    } catch (e) {
      if (ac.signal.aborted) {
        progress.cancelled();
        progress.settle("Build cancelled", "bangerd is undoing it…");
        await undone(progress);
      } else failure = e instanceof ApiError ? e.body : { code: "INTERNAL", message: (e as Error).message };
    } finally {
      window.removeEventListener("beforeunload", guard);
      aborter = undefined;
      submit.disabled = false;
      cancel.disabled = true;
      progress.dispose();
    }
    if (result) {
      const img = result;
      progress.settle(
        `Built ${img.name}`,
        h("a", { href: `#/images?show=${enc(img.name)}` }, `Open ${img.name} in Images`),
        img.aliases.length ? `, promoted as ${img.aliases.join(", ")}` : "",
      );
      progress.title.focus();
    } else if (failure) showFailure(failure, progress, started);
  }

  function showFailure(err: ErrorBody, progress: BuildProgress, started: boolean): void {
    const [first, ...rest] = err.message.split("\n");
    // The API quotes a failed step's last lines in its message; otherwise show the log's.
    const tail = rest.length ? rest : progress.tail(20);
    const details = [
      err.hint ? h("span", { class: "hint" }, `Hint: ${err.hint}`) : null,
      err.stage ? h("span", { class: "stage" }, `Failed stage: ${err.stage}`) : null,
      tail.length ? h("pre", { class: "console-tail", "aria-label": "Last output lines" }, tail.join("\n")) : null,
    ];
    const target = fieldFor(err);
    if (target === "steps") {
      replace(stepsError, first, ...details);
      stepsError.hidden = false;
      (stepsList.querySelector<HTMLElement>("textarea, input") ?? addScript).focus();
    } else if (target) {
      setError(target, first, ...details);
      target.input.focus();
    } else {
      replace(formError, h("strong", null, `${err.code}: ${first}`), ...details);
      formError.hidden = false;
      formError.setAttribute("tabindex", "-1");
      formError.focus();
    }
    // Refused before the stream started: nothing ran, so there is no progress to show.
    if (started) progress.settle("Build failed", `${err.code}${err.stage ? ` at ${err.stage}` : ""}; everything it made is undone`);
    else replace(progressSlot);
  }

  /** After a cancel: bangerd undoes the builder VM; its row is gone once that is done (what the CLI waits for too). */
  async function undone(progress: BuildProgress): Promise<void> {
    const vm = progress.builder;
    if (!vm) return progress.settle("Build cancelled", "before it started; nothing was left behind");
    for (let i = 0; i < 600; i++) {
      const state = await api<{ vm: Vm }>("GET", `/vms/${enc(vm)}`).then(
        (r) => r.vm.state,
        (e: unknown) => (e instanceof ApiError && e.body.code === "VM_NOT_FOUND" ? "gone" : undefined),
      );
      if (state === "gone") return progress.settle("Build cancelled", "nothing was left behind");
      if (state === "failed") return progress.settle("Build cancelled", `its builder VM ${vm} is failed; delete it from the VMs page`);
      await new Promise((r) => setTimeout(r, 250));
    }
    progress.settle("Build cancelled", `bangerd is still undoing it (builder VM ${vm})`);
  }

  replace(
    main,
    h("div", { class: "page-head" }, h("h1", null, "Build an image"), h("a", { href: "#/images" }, "Back to Images")),
    h(
      "p",
      { class: "muted" },
      "Boots a throw-away builder VM from the base, runs the packages and steps in it, and registers its disks as a new image, as ",
      h("code", null, "banger image build"),
      " does.",
    ),
    form,
    progressSlot,
  );
  let alive = true;
  void api<{ images: Image[] }>("GET", "/images").then(({ images }) => {
    if (!alive) return;
    const choices = imageChoices(images);
    replace(
      list,
      choices.map((c) => h("option", { value: c.value }, c.label)),
    );
    if (!f.from.input.value && choices[0]) f.from.input.value = choices[0].value;
  });
  return () => {
    alive = false;
    aborter?.abort();
  };
};
