import { api, enc } from "../api.js";
import { h, replace } from "../dom.js";

interface LogChunk {
  offset: number;
  size: number;
  data: string;
  start: number;
  running: boolean;
}

/** Keep the page's copy of the console to the last this-many characters; the download has it all. */
const KEEP_CHARS = 256 * 1024;
const POLL_MS = 1000;
/** Terminal colour and cursor sequences, and other control bytes but newline and tab: noise in a <pre>. */
// eslint-disable-next-line no-control-regex
const TERMINAL_NOISE = /\x1b\[[0-9;?]*[ -/]*[@-~]|\x1b[()][0-9A-Za-z]|[\x00-\x08\x0b-\x1a\x1c-\x1f\x7f]/g;

/**
 * `tail -f` of the VM's serial console through GET /v1/vms/:name/logs?offset=N: the offsets
 * survive rotation, so the page asks for what came after what it has.
 */
export function consoleView(name: string): { el: HTMLElement; stop(): void } {
  const pre = h("pre", { class: "console", tabindex: "0", "aria-label": `Serial console of ${name}` });
  const status = h("span", { class: "muted", role: "status" });
  const follow = h("input", { type: "checkbox", id: "console-follow", checked: true });
  const download = h("button", { type: "button", class: "small", onclick: () => void saveAll() }, "Download whole log");
  let offset = 0;
  let text = "";
  let stopped = false;
  let timer: ReturnType<typeof setTimeout> | undefined;

  async function poll(): Promise<void> {
    try {
      for (let i = 0; i < 16; i++) {
        const c = await api<LogChunk>("GET", `/vms/${enc(name)}/logs?offset=${offset}`);
        if (c.data) text = (text + c.data.replace(TERMINAL_NOISE, "").replace(/\r\n/g, "\n")).slice(-KEEP_CHARS);
        offset = c.offset;
        replace(status, `${c.size} bytes${c.running ? ", live" : ", VM not running"}`);
        if (c.offset >= c.size) break;
      }
      pre.textContent = text;
      if (follow.checked) pre.scrollTop = pre.scrollHeight;
    } catch (e) {
      replace(status, `console: ${(e as Error).message}`);
    }
    if (!stopped) timer = setTimeout(() => void poll(), POLL_MS);
  }

  async function saveAll(): Promise<void> {
    const parts: string[] = [];
    let at = 0;
    for (;;) {
      const c = await api<LogChunk>("GET", `/vms/${enc(name)}/logs?offset=${at}`);
      parts.push(c.data);
      if (c.offset >= c.size || c.offset === at) break;
      at = c.offset;
    }
    const url = URL.createObjectURL(new Blob(parts, { type: "text/plain" }));
    const a = h("a", { href: url, download: `${name}-console.log` });
    document.body.appendChild(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(url), 10_000);
  }

  void poll();
  const el = h(
    "section",
    { class: "console-wrap", "aria-labelledby": "console-h" },
    h(
      "div",
      { class: "page-head" },
      h("h2", { id: "console-h" }, "Serial console"),
      h("span", { class: "actions" }, h("span", { class: "checkbox" }, follow, h("label", { for: "console-follow" }, "Follow")), download),
    ),
    status,
    pre,
  );
  return {
    el,
    stop() {
      stopped = true;
      clearTimeout(timer);
    },
  };
}
