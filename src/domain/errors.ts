// Every failure that crosses a boundary (API, CLI) is a BangerError with a
// stable code. The code is the contract; messages may be reworded.
export const ERROR_STATUS = {
  BAD_REQUEST: 400,
  INVALID_NAME: 400,
  INVALID_ARTIFACT: 400,
  INVALID_CONFIG: 400,
  INVALID_IMAGE_MANIFEST: 422,
  IMAGE_DIGEST_MISMATCH: 422,
  IMAGE_SOURCE_FAILED: 502,
  IMAGE_STORE_FULL: 507,
  PATH_NOT_ALLOWED: 400,
  BODY_TOO_LARGE: 413,
  UNAUTHORIZED: 401,
  FORBIDDEN: 403,
  NOT_FOUND: 404,
  IMAGE_NOT_FOUND: 404,
  VM_NOT_FOUND: 404,
  IMAGE_EXISTS: 409,
  VM_EXISTS: 409,
  IMAGE_IN_USE: 409,
  IMAGE_BROKEN: 409,
  VM_STATE: 409,
  VM_BUSY: 409,
  VM_NOT_RUNNING: 409,
  CANCELLED: 409,
  NO_FREE_IP: 409,
  PORT_IN_USE: 409,
  EXTERNAL_ID_CONFLICT: 409,
  EVENTS_EXPIRED: 410,
  SSH_KEY: 500,
  VMM_NOT_FOUND: 500,
  VMM_FAILED: 500,
  NETWORK_FAILED: 500,
  DISK_FAILED: 500,
  GUEST_NOT_READY: 504,
  CHANNEL_BUSY: 409,
  CHANNEL_FAILED: 502,
  CHANNEL_UNAVAILABLE: 503,
  CHANNEL_UNSUPPORTED: 501,
  COMMAND_FAILED: 500,
  TIMEOUT: 504,
  SCHEMA_TOO_NEW: 500,
  DAEMON_RUNNING: 409,
  DAEMON_UNREACHABLE: 503,
  HOST_RESOURCES: 503,
  CLUSTER_UNREACHABLE: 503,
  CLUSTER_CONFLICT: 409,
  INTERNAL: 500,
} as const;

export type ErrorCode = keyof typeof ERROR_STATUS;

export interface ErrorBody {
  code: ErrorCode;
  message: string;
  hint?: string;
  stage?: string;
  /** The request field at fault, when one is (a form shows the error beside it). */
  field?: string;
}

export class BangerError extends Error {
  readonly code: ErrorCode;
  readonly hint?: string;
  readonly stage?: string;
  readonly field?: string;

  constructor(code: ErrorCode, message: string, opts: { hint?: string; stage?: string; field?: string; cause?: unknown } = {}) {
    super(message, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.name = "BangerError";
    this.code = code;
    this.hint = opts.hint;
    this.stage = opts.stage;
    this.field = opts.field;
  }

  get status(): number {
    return ERROR_STATUS[this.code];
  }

  toJSON(): ErrorBody {
    const body: ErrorBody = { code: this.code, message: this.message };
    if (this.hint) body.hint = this.hint;
    if (this.stage) body.stage = this.stage;
    if (this.field) body.field = this.field;
    return body;
  }
}

export function isBangerError(e: unknown): e is BangerError {
  return e instanceof BangerError;
}

/** A BangerError with one of `codes`: `isCode(e, "TIMEOUT")` instead of comparing `.code` by hand. */
export function isCode(e: unknown, ...codes: ErrorCode[]): e is BangerError {
  return e instanceof BangerError && codes.includes(e.code);
}

function parentDir(path: string): string {
  const cut = path.lastIndexOf("/");
  return cut > 0 ? path.slice(0, cut) : "/";
}

/**
 * A failure of the host (full disk, permissions, fd limits) is the
 * environment's, not a bug: give it a code and a fix instead of INTERNAL.
 * Undefined when the error carries no errno we know.
 */
export function fromErrno(e: unknown, ctx: { path?: string; action?: string } = {}): BangerError | undefined {
  if (!(e instanceof Error)) return undefined;
  const { code, path } = e as Error & { code?: unknown; path?: unknown };
  if (typeof code !== "string") return undefined;
  const where = ctx.path ?? (typeof path === "string" ? path : undefined);
  const on = `${where ? ` (${where})` : ""}${ctx.action ? ` while ${ctx.action}` : ""}`;
  switch (code) {
    case "ENOSPC":
    case "EDQUOT":
      return new BangerError("DISK_FAILED", `no space left on the device${on}: ${e.message}`, {
        cause: e,
        hint: `free space on the file system holding ${where ?? "state_dir"} (\`df -h\` shows usage), or lower disk_pool_size / disk_pool_max_gib`,
      });
    case "EACCES":
    case "EPERM":
      return new BangerError("DISK_FAILED", `permission denied${on}: ${e.message}`, {
        cause: e,
        hint: where ? `bangerd needs read/write access to ${where}: run it as root, or fix the owner and mode of ${parentDir(where)}` : "run bangerd as root",
      });
    case "EROFS":
      return new BangerError("DISK_FAILED", `read-only file system${on}: ${e.message}`, {
        cause: e,
        hint: `${where ?? "state_dir"} is on a read-only file system: remount it read-write, or point state_dir elsewhere`,
      });
    case "ENOENT":
      return new BangerError("DISK_FAILED", `a file banger manages is missing${on}: ${e.message}`, {
        cause: e,
        hint: "something outside banger removed it; `banger doctor` checks the state directory",
      });
    case "EMFILE":
    case "ENFILE":
    case "ENOMEM":
    case "EAGAIN":
      return new BangerError("HOST_RESOURCES", `the host ran out of a resource (${code}): ${e.message}`, {
        cause: e,
        hint: code === "ENOMEM" ? "free memory or create smaller VMs (--memory)" : "raise the open-file limit of bangerd (LimitNOFILE in its systemd unit)",
      });
    default:
      return undefined;
  }
}

/** Wrap anything thrown into a BangerError, keeping existing codes; host errno failures get their own. */
export function asBangerError(e: unknown, fallback: ErrorCode = "INTERNAL"): BangerError {
  if (e instanceof BangerError) return e;
  const host = fromErrno(e);
  if (host) return host;
  const msg = e instanceof Error ? e.message : String(e);
  return new BangerError(fallback, msg, { cause: e });
}

/**
 * fromErrno with the caller's context, for callers that know they did file-system work:
 * any other errno is then still the disk's (DISK_FAILED); only a code-less error is INTERNAL.
 */
export function errnoError(e: unknown, ctx: { path: string; action: string }): BangerError {
  if (e instanceof BangerError) return e;
  const hasCode = e instanceof Error && typeof (e as { code?: unknown }).code === "string";
  return (
    fromErrno(e, ctx) ?? new BangerError(hasCode ? "DISK_FAILED" : "INTERNAL", `${ctx.action}: ${e instanceof Error ? e.message : String(e)}`, { cause: e })
  );
}
