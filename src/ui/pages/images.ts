import { artifactOf, type Image } from "../../domain/types.js";
import { ApiError, api, enc, type ErrorBody } from "../api.js";
import { bytes, confirmDialog, field, h, localTime, replace, setError } from "../dom.js";
import { live } from "../live.js";
import type { Page } from "../page.js";

function errText(e: unknown): string {
  const b: Partial<ErrorBody> = e instanceof ApiError ? e.body : { message: (e as Error).message };
  return `${b.message ?? ""}${b.hint ? ` (${b.hint})` : ""}`;
}

function imageRow(img: Image, status: HTMLElement, reload: () => void): HTMLElement {
  const size = img.artifacts.reduce((n, a) => n + a.sizeBytes, 0);
  const aliasInput = h("input", { "aria-label": `New alias for ${img.name}`, placeholder: "alias", size: 10, autocomplete: "off" });
  const act = async (what: string, call: () => Promise<unknown>) => {
    replace(status, `${what}…`);
    try {
      await call();
      replace(status, `${what}: done`);
      reload();
    } catch (e) {
      replace(status, h("span", { class: "error-text" }, `${what} failed: ${errText(e)}`));
    }
  };
  const parent = (img as Image & { parent?: string }).parent;
  return h(
    "tr",
    { "data-image": img.name },
    h("th", { scope: "row" }, img.name),
    h("td", null, img.aliases.join(", ") || "—"),
    h(
      "td",
      null,
      h("span", { class: `badge image-${img.status}`, title: img.statusDetail }, img.status),
      img.statusDetail ? h("div", { class: "muted small-text" }, img.statusDetail) : null,
    ),
    h("td", null, img.guest.os || "—"),
    h("td", null, artifactOf(img, "work_seed") ? "yes" : "no"),
    h("td", { class: "num" }, bytes(size)),
    h("td", null, parent ?? "—"),
    h("td", null, h("time", { datetime: img.createdAt }, localTime(img.createdAt))),
    h(
      "td",
      null,
      h(
        "div",
        { class: "row-actions" },
        h(
          "form",
          {
            class: "inline",
            onsubmit: (ev: Event) => {
              ev.preventDefault();
              const alias = aliasInput.value.trim();
              void act(`promote ${img.name} as ${alias}`, () => api("POST", `/images/${enc(img.name)}/promote`, { alias }));
            },
          },
          aliasInput,
          h("button", { type: "submit", class: "small" }, "Promote"),
        ),
        h(
          "span",
          { class: "actions" },
          h(
            "button",
            {
              type: "button",
              class: "small",
              "aria-label": `Fill the warm disk pool of ${img.name}`,
              onclick: () => void act(`warm pool of ${img.name}`, () => api("POST", `/images/${enc(img.name)}/warm`, {})),
            },
            "Fill pool",
          ),
          h(
            "button",
            {
              type: "button",
              class: "small danger",
              "aria-label": `Delete image ${img.name}`,
              onclick: async () => {
                if (await confirmDialog(`Delete image ${img.name}?`, h("p", null, "Its files are removed from the image store."), "Delete")) {
                  await act(`delete ${img.name}`, () => api("DELETE", `/images/${enc(img.name)}`));
                }
              },
            },
            "Delete",
          ),
        ),
      ),
    ),
  );
}

function registerForm(onDone: () => void): HTMLElement {
  const f = {
    name: field("Name", h("input", { name: "name", autocomplete: "off", required: true }), "e.g. debian-12.8-1"),
    kernel: field("Kernel", h("input", { name: "kernel", autocomplete: "off", required: true }), "absolute path on the host"),
    initrd: field("Initrd", h("input", { name: "initrd", autocomplete: "off" }), "optional"),
    rootfs: field("Root file system (ext4)", h("input", { name: "rootfs", autocomplete: "off", required: true })),
    workSeed: field("Work seed (ext4)", h("input", { name: "workSeed", autocomplete: "off" }), "optional: the VMs' /root starts as a copy"),
    os: field("OS", h("input", { name: "os", autocomplete: "off" }), "optional, e.g. debian"),
  };
  const formError = h("div", { class: "form-error", role: "alert", hidden: true });
  const submit = h("button", { type: "submit", class: "primary" }, "Register");
  const form = h(
    "form",
    {
      class: "register",
      novalidate: true,
      onsubmit: async (ev: Event) => {
        ev.preventDefault();
        for (const x of Object.values(f)) setError(x, undefined);
        formError.hidden = true;
        const body: Record<string, string> = {};
        for (const [k, x] of Object.entries(f)) if (x.input.value.trim()) body[k] = x.input.value.trim();
        submit.disabled = true;
        try {
          await api("POST", "/images", body);
          for (const x of Object.values(f)) x.input.value = "";
          onDone();
        } catch (e) {
          const b = e instanceof ApiError ? e.body : undefined;
          const target = b?.field ?? (b?.code === "INVALID_NAME" || b?.code === "IMAGE_EXISTS" ? "name" : undefined);
          const x = target ? f[target as keyof typeof f] : undefined;
          if (x) setError(x, b!.message, b!.hint ? h("span", { class: "hint" }, `Hint: ${b!.hint}`) : null);
          else {
            replace(formError, errText(e));
            formError.hidden = false;
          }
        } finally {
          submit.disabled = false;
        }
      },
    },
    h(
      "div",
      { class: "grid2" },
      Object.values(f).map((x) => x.row),
    ),
    formError,
    h("div", { class: "actions" }, submit),
  );
  return h(
    "details",
    { class: "register-box" },
    h("summary", null, "Register an image"),
    h("p", { class: "muted" }, "Paths are on the bangerd host; the files are copied into the image store and checked as `banger image register` does."),
    form,
  );
}

/** `#/images?show=<name>` (where a finished build links to): that row is marked and scrolled to. */
export const imagesPage: Page = (main, [show]) => {
  const status = h("p", { class: "status", role: "status", "aria-live": "polite" });
  const body = h("tbody");
  let alive = true;
  const load = () =>
    void api<{ images: Image[] }>("GET", "/images").then(({ images }) => {
      if (!alive) return;
      replace(body, images.length ? images.map((i) => imageRow(i, status, load)) : h("tr", null, h("td", { colspan: "9" }, "No images registered.")));
      const mark = show ? body.querySelector<HTMLElement>(`tr[data-image="${CSS.escape(show)}"]`) : null;
      if (mark) {
        mark.classList.add("shown");
        mark.setAttribute("aria-current", "true");
        mark.scrollIntoView({ block: "center" });
      }
    });
  replace(
    main,
    h("div", { class: "page-head" }, h("h1", null, "Images"), h("a", { class: "button", href: "#/images/build" }, "Build an image")),
    status,
    h(
      "div",
      { class: "table-wrap" },
      h(
        "table",
        null,
        h("caption", { class: "visually-hidden" }, "Images"),
        h(
          "thead",
          null,
          h(
            "tr",
            null,
            ["Name", "Aliases", "Status", "OS", "Work seed", "Size", "Parent", "Registered", "Actions"].map((c) => h("th", { scope: "col" }, c)),
          ),
        ),
        body,
      ),
    ),
    registerForm(load),
  );
  load();
  const off = live.onImages(load);
  return () => {
    alive = false;
    off();
  };
};
