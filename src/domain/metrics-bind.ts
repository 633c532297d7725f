import { parseListen, type WebBind } from "./web-bind.js";

/** The metrics listener's settings, as wire.ts hands them on. */
export interface MetricsSettings {
  /** host:port, or "" for off (the socket's GET /metrics is always there). */
  listen: string;
  allowRemote: boolean;
}

/**
 * Whether the TCP metrics listener may start, and if not why. Like the web UI, a non-loopback
 * bind needs `metrics.allow_remote`: the endpoint has no authentication at all, and what it shows
 * (VM counts per image, failure codes, pool sizes) tells an outsider about the host.
 */
export function metricsBindVerdict(m: MetricsSettings): { bind?: WebBind; off?: string; refused?: string; fix?: string } {
  if (m.listen === "") return { off: 'metrics.listen = ""' };
  const bind = parseListen(m.listen);
  if (!bind) return { refused: `metrics.listen ${m.listen} is not host:port`, fix: "set metrics.listen to e.g. 127.0.0.1:9464" };
  if (!bind.loopback && !m.allowRemote) {
    return {
      refused: `metrics.listen ${m.listen} is not a loopback address; the metrics endpoint has no authentication, so anyone on that network could read it`,
      fix: "bind to 127.0.0.1 (scrape through an SSH tunnel or a local agent), or set metrics.allow_remote = true behind a firewall you trust",
    };
  }
  return { bind };
}
