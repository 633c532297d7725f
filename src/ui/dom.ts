/** A tiny element builder: the UI's only rendering helper. Text goes in as text nodes, never as HTML. */
export type Child = Node | string | number | null | undefined | false | Child[];
type Attrs = Record<string, unknown>;

export function h<K extends keyof HTMLElementTagNameMap>(tag: K, attrs?: Attrs | null, ...children: Child[]): HTMLElementTagNameMap[K] {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs ?? {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith("on") && typeof v === "function") el.addEventListener(k.slice(2), v as EventListener);
    else if (k === "value" && "value" in el) (el as HTMLInputElement).value = String(v);
    else if (k === "checked" && "checked" in el) (el as HTMLInputElement).checked = Boolean(v);
    else el.setAttribute(k, v === true ? "" : String(v));
  }
  append(el, children);
  return el;
}

export function append(el: Node, children: Child[]): void {
  for (const c of children) {
    if (c === null || c === undefined || c === false) continue;
    if (Array.isArray(c)) append(el, c);
    else el.appendChild(typeof c === "object" ? c : document.createTextNode(String(c)));
  }
}

export function replace(el: Element, ...children: Child[]): void {
  el.replaceChildren();
  append(el, children);
}

let ids = 0;
export function uid(prefix: string): string {
  return `${prefix}-${++ids}`;
}

/** A labelled input with a slot for its error: the one form-field shape of every form. */
export function field(
  label: string,
  input: HTMLInputElement | HTMLSelectElement | HTMLTextAreaElement,
  help?: string,
): { row: HTMLElement; input: typeof input; error: HTMLElement } {
  input.id ||= uid("f");
  const error = h("p", { class: "field-error", id: `${input.id}-error`, role: "alert", hidden: true });
  const helpEl = help ? h("p", { class: "field-help", id: `${input.id}-help` }, help) : null;
  input.setAttribute("aria-describedby", [helpEl ? `${input.id}-help` : "", `${input.id}-error`].filter(Boolean).join(" "));
  const row = h("div", { class: "field" }, h("label", { for: input.id }, label), input, helpEl, error);
  return { row, input, error };
}

export function setError(f: { input: Element; error: HTMLElement }, message: string | undefined, ...extra: Child[]): void {
  if (!message) {
    f.error.hidden = true;
    f.error.replaceChildren();
    f.input.removeAttribute("aria-invalid");
    return;
  }
  replace(f.error, message, ...extra);
  f.error.hidden = false;
  f.input.setAttribute("aria-invalid", "true");
}

export function age(iso: string, now = Date.now()): string {
  const s = Math.max(0, Math.round((now - Date.parse(iso)) / 1000));
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m`;
  if (s < 86400) return `${Math.floor(s / 3600)}h ${Math.floor((s % 3600) / 60)}m`;
  return `${Math.floor(s / 86400)}d`;
}

export function ms(n: number): string {
  return n >= 1000 ? `${(n / 1000).toFixed(2)} s` : `${Math.round(n)} ms`;
}

export function bytes(n: number): string {
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  let v = n;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${v.toFixed(i === 0 ? 0 : 1)} ${units[i]}`;
}

export function localTime(iso: string): string {
  return new Date(iso).toLocaleString(undefined, { dateStyle: "short", timeStyle: "medium" });
}

/** A copy button beside a command; the command stays selectable text for keyboards without a clipboard. */
export function copyable(text: string, label: string): HTMLElement {
  const status = h("span", { class: "copy-status", role: "status" });
  const btn = h(
    "button",
    {
      type: "button",
      class: "small",
      "aria-label": label,
      onclick: () => {
        navigator.clipboard.writeText(text).then(
          () => replace(status, "copied"),
          () => replace(status, "select and copy by hand"),
        );
        setTimeout(() => replace(status), 2000);
      },
    },
    "Copy",
  );
  return h("span", { class: "copyable" }, h("code", null, text), btn, status);
}

/** A modal confirmation; resolves true on confirm. <dialog> keeps focus inside and Escape cancels. */
export function confirmDialog(title: string, body: Child, confirmLabel: string): Promise<boolean> {
  return new Promise((resolve) => {
    const titleId = uid("dlg");
    const dlg = h(
      "dialog",
      { "aria-labelledby": titleId, class: "confirm" },
      h("h2", { id: titleId }, title),
      h("div", null, body),
      h(
        "form",
        { method: "dialog", class: "actions" },
        h("button", { value: "cancel", type: "submit" }, "Cancel"),
        h("button", { value: "ok", type: "submit", class: "danger" }, confirmLabel),
      ),
    );
    dlg.addEventListener("close", () => {
      resolve(dlg.returnValue === "ok");
      dlg.remove();
    });
    document.body.appendChild(dlg);
    dlg.showModal();
  });
}
