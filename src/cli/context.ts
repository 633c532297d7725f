import type { Command } from "commander";
import { loadConfig, type LoadedConfig } from "../config/load.js";
import { ApiClient } from "./client.js";

export interface GlobalOpts {
  json?: boolean;
  socket?: string;
  config?: string;
}

/** Per-invocation state: config is loaded once and only when a command needs it. */
export class CliContext {
  private loaded?: LoadedConfig;
  private api?: ApiClient;

  constructor(private readonly program: Command) {}

  get opts(): GlobalOpts {
    return this.program.opts<GlobalOpts>();
  }

  get json(): boolean {
    return Boolean(this.opts.json);
  }

  cfg(): LoadedConfig {
    this.loaded ??= loadConfig({ configFlag: this.opts.config, socketFlag: this.opts.socket });
    return this.loaded;
  }

  client(): ApiClient {
    this.api ??= new ApiClient(this.cfg().paths.socket);
    return this.api;
  }

  /** JSON mode prints the object; human mode prints the text. */
  out(human: string | (() => string), obj: unknown): void {
    process.stdout.write(`${this.json ? JSON.stringify(obj, null, 2) : typeof human === "function" ? human() : human}\n`);
  }

  async close(): Promise<void> {
    await this.api?.close();
  }
}
