export interface RunOptions {
  /** Hard limit; the child is killed (SIGKILL) when it expires. Every call has one. */
  timeoutMs?: number;
  input?: string | Buffer;
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  /** Return a non-zero exit instead of throwing COMMAND_FAILED. */
  allowFailure?: boolean;
}

export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs host commands (ip, nft, mkfs.ext4, ...). The only way adapters touch the host shell. */
export interface Runner {
  run(cmd: string, args: string[], opts?: RunOptions): Promise<RunResult>;
}
