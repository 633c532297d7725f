import { createConnection, type Socket } from "node:net";
import { BangerError } from "../../domain/errors.js";

export interface QmpEvent {
  event: string;
  data?: unknown;
  timestamp?: { seconds: number; microseconds: number };
}

interface Pending {
  command: string;
  resolve: (v: unknown) => void;
  reject: (e: Error) => void;
  timer: NodeJS.Timeout;
}

const DEFAULT_COMMAND_TIMEOUT_MS = 5_000;

function qmpError(message: string, hint?: string, cause?: unknown): BangerError {
  return new BangerError("VMM_FAILED", message, { hint: hint ?? "see vmm.log and console.log in the VM directory", cause });
}

/**
 * Minimal QMP client: newline-delimited JSON over a UNIX socket. Replies are
 * matched to commands by `id`, so asynchronous events that arrive in between
 * (STOP, RESUME, SHUTDOWN, ...) never get mistaken for a reply.
 */
export class QmpClient {
  readonly events: QmpEvent[] = [];
  private buf = "";
  private nextId = 1;
  private readonly pending = new Map<number, Pending>();
  private closedError: Error | undefined;

  private constructor(
    private readonly sock: Socket,
    readonly socketPath: string,
    private readonly defaultTimeoutMs: number,
  ) {}

  /** Connect, read the greeting and leave capability negotiation mode. */
  static connect(socketPath: string, timeoutMs = DEFAULT_COMMAND_TIMEOUT_MS): Promise<QmpClient> {
    return new Promise((resolve, reject) => {
      const sock = createConnection(socketPath);
      const client = new QmpClient(sock, socketPath, timeoutMs);
      let greeted = false;
      const timer = setTimeout(() => {
        sock.destroy();
        reject(qmpError(`QMP at ${socketPath} sent no greeting within ${timeoutMs} ms`));
      }, timeoutMs);
      sock.setEncoding("utf8");
      sock.on("error", (e: NodeJS.ErrnoException) => {
        client.fail(qmpError(`QMP socket ${socketPath}: ${e.message}`, undefined, e));
        if (!greeted) {
          clearTimeout(timer);
          reject(qmpError(`cannot connect to QMP at ${socketPath}: ${e.code ?? e.message}`, undefined, e));
        }
      });
      sock.on("close", () => {
        client.fail(qmpError(`QMP connection to ${socketPath} closed (qemu exited?)`));
        if (!greeted) {
          clearTimeout(timer);
          reject(qmpError(`QMP at ${socketPath} closed before its greeting`));
        }
      });
      sock.on("data", (chunk: string) => {
        client.buf += chunk;
        let nl: number;
        while ((nl = client.buf.indexOf("\n")) >= 0) {
          const line = client.buf.slice(0, nl).trim();
          client.buf = client.buf.slice(nl + 1);
          if (!line) continue;
          let msg: Record<string, unknown>;
          try {
            msg = JSON.parse(line) as Record<string, unknown>;
          } catch {
            continue;
          }
          if (!greeted && "QMP" in msg) {
            greeted = true;
            clearTimeout(timer);
            client.execute("qmp_capabilities", undefined, timeoutMs).then(
              () => resolve(client),
              (e: unknown) => {
                client.close();
                reject(e);
              },
            );
            continue;
          }
          client.dispatch(msg);
        }
      });
    });
  }

  private dispatch(msg: Record<string, unknown>): void {
    if (typeof msg.event === "string") {
      this.events.push(msg as unknown as QmpEvent);
      return;
    }
    const id = typeof msg.id === "number" ? msg.id : undefined;
    const p = id === undefined ? undefined : this.pending.get(id);
    if (!p || id === undefined) return;
    this.pending.delete(id);
    clearTimeout(p.timer);
    if ("error" in msg) {
      const e = msg.error as { class?: string; desc?: string };
      p.reject(qmpError(`QMP ${p.command} failed: ${e.desc ?? e.class ?? "unknown error"}`));
    } else {
      p.resolve(msg.return);
    }
  }

  private fail(err: Error): void {
    this.closedError ??= err;
    for (const [id, p] of this.pending) {
      clearTimeout(p.timer);
      this.pending.delete(id);
      p.reject(err);
    }
  }

  /** Run one command; rejects with VMM_FAILED on a QMP error, TIMEOUT when qemu does not answer (default: the connect timeout). */
  execute<T = unknown>(command: string, args?: Record<string, unknown>, timeoutMs = this.defaultTimeoutMs): Promise<T> {
    if (this.closedError) return Promise.reject(this.closedError);
    const id = this.nextId++;
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(
          new BangerError("TIMEOUT", `QMP ${command} got no answer within ${timeoutMs} ms`, {
            hint: "qemu is unresponsive; `banger vm stop` ends it with SIGTERM/SIGKILL after the timeout, `banger vm rm --force` removes the VM",
          }),
        );
      }, timeoutMs);
      this.pending.set(id, { command, resolve: resolve as (v: unknown) => void, reject, timer });
      const payload: Record<string, unknown> = { execute: command, id };
      if (args) payload.arguments = args;
      this.sock.write(JSON.stringify(payload) + "\n");
    });
  }

  close(): void {
    this.fail(qmpError(`QMP connection to ${this.socketPath} closed`));
    this.sock.destroy();
  }
}

/** Open a connection, run fn, always close. timeoutMs bounds the connect and each command. Each driver call uses its own short-lived connection. */
export async function withQmp<T>(socketPath: string, fn: (q: QmpClient) => Promise<T>, timeoutMs = DEFAULT_COMMAND_TIMEOUT_MS): Promise<T> {
  const q = await QmpClient.connect(socketPath, timeoutMs);
  try {
    return await fn(q);
  } finally {
    q.close();
  }
}
