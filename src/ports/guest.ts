export interface SshTarget {
  host: string;
  port?: number;
  user: string;
  keyPath: string;
  knownHostsPath: string;
  /** Reach sshd through this ssh ProxyCommand (banger-vsock: the guest channel) instead of host:port. */
  proxyCommand?: string;
}

export interface Guest {
  /**
   * TCP connect + SSH banner + authenticated `true`. Polls until ready or timeout. `probe: false`
   * skips the banner probe, for a guest whose sshd is known to be up (a restored one): each
   * connection costs sshd a re-exec, which a TCG guest pays dearly for. `command` replaces `true`
   * (it must exit 0 and may run more than once): work that needs a login anyway rides on the proof.
   */
  waitSsh(target: SshTarget, timeoutMs: number, signal?: AbortSignal, opts?: { probe?: boolean; command?: string }): Promise<void>;
  /** A TCP port on the guest accepts connections. */
  waitPort(host: string, port: number, timeoutMs: number, signal?: AbortSignal): Promise<void>;
  /** Status of one HTTP GET to the guest; rejects when nothing answered within timeoutMs. */
  httpStatus(host: string, port: number, path: string, headers: Record<string, string>, timeoutMs: number): Promise<number>;
  /** Run a command over SSH; used for in-guest power-off and checks. */
  exec(target: SshTarget, command: string, timeoutMs: number): Promise<{ code: number; stdout: string; stderr: string }>;
}
