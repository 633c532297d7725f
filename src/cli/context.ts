import type { Command } from "commander";
import type { LoadedConfig } from "../config/load.js";
import { ApiClient } from "./client.js";
import { quickSocket } from "./socket.js";

export interface GlobalOpts {
  json?: boolean;
  socket?: string;
  config?: string;
  /** A Kubernetes cluster instead of the local bangerd (docs/scale-out.md): `k8s`, or a [contexts.NAME] entry. */
  context?: string;
}

/** Per-invocation state: config is loaded once and only when a command needs it. */
export class CliContext {
  private loaded?: Promise<LoadedConfig>;
  private api?: ApiClient;

  constructor(private readonly program: Command) {}

  get opts(): GlobalOpts {
    return this.program.opts<GlobalOpts>();
  }

  /** Set when `--context` names a cluster: vm create|ls|rm then go to its API server. */
  get clusterContext(): string | undefined {
    const c = this.opts.context;
    return c && c !== "local" ? c : undefined;
  }

  get json(): boolean {
    return Boolean(this.opts.json);
  }

  /** The validated config; its loader (zod) is imported only by the commands that use it. */
  cfg(): Promise<LoadedConfig> {
    this.loaded ??= import("../config/load.js").then(({ loadConfig }) => loadConfig({ configFlag: this.opts.config, socketFlag: this.opts.socket }));
    return this.loaded;
  }

  async socket(): Promise<string> {
    return quickSocket(this.opts) ?? (await this.cfg()).paths.socket;
  }

  client(): ApiClient {
    this.api ??= new ApiClient(() => this.socket());
    return this.api;
  }

  /** The daemon's share of this command's time, for BANGER_TIMING (bench/cli.ts). */
  timing(): { requests: number; serverMs: number; waitMs: number } {
    return this.api?.timing ?? { requests: 0, serverMs: 0, waitMs: 0 };
  }

  /** JSON mode prints the object; human mode prints the text. */
  out(human: string | (() => string), obj: unknown): void {
    process.stdout.write(`${this.json ? JSON.stringify(obj, null, 2) : typeof human === "function" ? human() : human}\n`);
  }
}
