import { h, replace } from "./dom.js";
import { live } from "./live.js";
import { vmsPage } from "./pages/vms.js";
import { createPage } from "./pages/create.js";
import { vmDetailPage } from "./pages/vm-detail.js";
import { imagesPage } from "./pages/images.js";
import { hostPage } from "./pages/host.js";
import { buildPage } from "./pages/build.js";

import type { Page } from "./page.js";

const routes: [RegExp, Page, string][] = [
  [/^\/?$/, vmsPage, "VMs"],
  [/^\/vms\/?$/, vmsPage, "VMs"],
  [/^\/vms\/([^/]+)$/, vmDetailPage, "VM"],
  [/^\/create$/, createPage, "Create"],
  [/^\/images\/build$/, buildPage, "Build image"],
  [/^\/images(?:\?show=(.+))?$/, imagesPage, "Images"],
  [/^\/host$/, hostPage, "Host"],
];

const NAV: [string, string][] = [
  ["#/vms", "VMs"],
  ["#/create", "Create VM"],
  ["#/images", "Images"],
  ["#/host", "Host"],
];

let leave: (() => void) | void;

function route(main: HTMLElement, nav: HTMLElement): void {
  const path = decodeURI(location.hash.replace(/^#/, "")) || "/";
  leave?.();
  leave = undefined;
  for (const a of nav.querySelectorAll("a")) {
    const here =
      path === a.getAttribute("href")!.slice(1) ||
      (a.getAttribute("href") === "#/vms" && (path === "/" || path.startsWith("/vms"))) ||
      (a.getAttribute("href") === "#/images" && path.startsWith("/images"));
    if (here) a.setAttribute("aria-current", "page");
    else a.removeAttribute("aria-current");
  }
  for (const [re, page, title] of routes) {
    const m = re.exec(path);
    if (!m) continue;
    replace(main);
    document.title = `${title} · banger`;
    leave = page(
      main,
      m.slice(1).map((x) => (x === undefined ? "" : decodeURIComponent(x))),
    );
    main.focus({ preventScroll: true });
    return;
  }
  replace(main, h("h1", null, "Not found"), h("p", null, "No page at ", h("code", null, path), ". ", h("a", { href: "#/vms" }, "Back to VMs")));
}

function boot(): void {
  const nav = h(
    "nav",
    { "aria-label": "Main" },
    NAV.map(([href, label]) => h("a", { href }, label)),
  );
  const status = h("span", { class: "conn", role: "status", "aria-live": "polite" });
  const main = h("main", { id: "main", tabindex: "-1" });
  const header = h(
    "header",
    null,
    h("button", { type: "button", class: "skip", onclick: () => main.focus() }, "Skip to content"),
    h("span", { class: "brand" }, "banger"),
    nav,
    status,
  );
  document.body.replaceChildren(header, main);
  const showConn = () => replace(status, live.connected ? "live" : "reconnecting…");
  live.onChange(showConn);
  live.start();
  showConn();
  window.addEventListener("hashchange", () => route(main, nav));
  route(main, nav);
}

boot();
