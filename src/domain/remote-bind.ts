import { parseListen, type WebBind } from "./web-bind.js";

/** The remote API listener's settings, as wire.ts hands them on. */
export interface RemoteSettings {
  /** host:port, or "" for off. */
  listen: string;
  allowRemote: boolean;
  /** Where the bearer token is read from (created, 0600, when missing). */
  tokenFile: string;
}

/**
 * Whether the remote API listener may start. The token guards it, but it is plain HTTP: beyond
 * loopback anyone on the path can read the token and the traffic, so that takes
 * `remote.allow_remote` (and, in practice, a TLS proxy or a private network).
 */
export function remoteBindVerdict(r: Pick<RemoteSettings, "listen" | "allowRemote">): { bind?: WebBind; off?: string; refused?: string; fix?: string } {
  if (r.listen === "") return { off: 'remote.listen = ""' };
  const bind = parseListen(r.listen);
  if (!bind) return { refused: `remote.listen ${r.listen} is not host:port`, fix: "set remote.listen to e.g. 127.0.0.1:7781" };
  if (!bind.loopback && !r.allowRemote) {
    return {
      refused: `remote.listen ${r.listen} is not a loopback address; the remote API is plain HTTP with a bearer token that manages every VM`,
      fix: "bind to 127.0.0.1 (reach it through an SSH tunnel or a TLS proxy on the host), or set remote.allow_remote = true on a network you trust",
    };
  }
  return { bind };
}
