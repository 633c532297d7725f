/** The web listener's settings, as wire.ts hands them on. */
export interface WebSettings {
  enabled: boolean;
  /** host:port, or "" for off. */
  listen: string;
  allowRemote: boolean;
}

export interface WebBind {
  host: string;
  port: number;
  loopback: boolean;
}

/** Splits host:port; `[::1]:7780` style IPv6 included. */
export function parseListen(listen: string): WebBind | undefined {
  const m = /^\[?([^\]]+?)\]?:(\d{1,5})$/.exec(listen);
  if (!m) return undefined;
  const port = Number(m[2]);
  if (port < 1 || port > 65535) return undefined;
  const host = m[1];
  return { host, port, loopback: isLoopback(host) };
}

export function isLoopback(host: string): boolean {
  return host === "localhost" || host === "::1" || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(host);
}

/**
 * Whether the listener may start, and if not why. A non-loopback bind is refused unless
 * `web.allow_remote`: the UI speaks plain HTTP and its session cookie is the only guard.
 */
export function webBindVerdict(w: WebSettings): { bind?: WebBind; off?: string; refused?: string; fix?: string } {
  if (!w.enabled) return { off: "web.enabled = false" };
  if (w.listen === "") return { off: 'web.listen = ""' };
  const bind = parseListen(w.listen);
  if (!bind) return { refused: `web.listen ${w.listen} is not host:port`, fix: "set web.listen to e.g. 127.0.0.1:7780" };
  if (!bind.loopback && !w.allowRemote) {
    return {
      refused: `web.listen ${w.listen} is not a loopback address; the UI is plain HTTP with a session cookie, so anyone on that network could try it`,
      fix: "bind to 127.0.0.1 and use an SSH tunnel, or set web.allow_remote = true behind a TLS proxy you trust",
    };
  }
  return { bind };
}
