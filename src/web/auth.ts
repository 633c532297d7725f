import { createHmac, randomBytes, timingSafeEqual } from "node:crypto";
import { chmodSync, readFileSync, writeFileSync } from "node:fs";

/** How long a `banger web` link stays usable, and how many may be outstanding. */
const LINK_TTL_MS = 10 * 60_000;
const MAX_LINKS = 32;
/** A browser session lasts a working day; `banger web` gives a new link after that. */
const SESSION_TTL_MS = 12 * 3600_000;

export const SESSION_COOKIE = "banger_session";

/**
 * The key in `<state_dir>/web-token` (0600) signs session cookies and CSRF tokens, so sessions
 * survive a daemon restart and deleting the file logs every browser out. One-time login codes
 * live only in memory: a restart voids the links nobody used yet.
 */
export class WebAuth {
  private readonly codes = new Map<string, number>();

  constructor(private readonly key: Buffer) {}

  static fromStateDir(file: string): WebAuth {
    let hex: string | undefined;
    try {
      hex = readFileSync(file, "utf8").trim();
    } catch {
      hex = undefined;
    }
    if (!hex || !/^[0-9a-f]{64}$/.test(hex)) {
      hex = randomBytes(32).toString("hex");
      writeFileSync(file, hex + "\n", { mode: 0o600 });
    }
    // An older file may have been created with looser bits.
    chmodSync(file, 0o600);
    return new WebAuth(Buffer.from(hex, "hex"));
  }

  /** A fresh single-use code for the login link. */
  issueCode(now = Date.now()): { code: string; expiresAt: number } {
    for (const [c, exp] of this.codes) if (exp <= now) this.codes.delete(c);
    while (this.codes.size >= MAX_LINKS) this.codes.delete(this.codes.keys().next().value!);
    const code = randomBytes(24).toString("base64url");
    const expiresAt = now + LINK_TTL_MS;
    this.codes.set(code, expiresAt);
    return { code, expiresAt };
  }

  /** Spends the code: true at most once per code. */
  redeem(code: string, now = Date.now()): boolean {
    const exp = this.codes.get(code);
    this.codes.delete(code);
    return exp !== undefined && exp > now;
  }

  newSession(now = Date.now()): { cookie: string; maxAgeS: number } {
    const id = randomBytes(18).toString("base64url");
    const exp = now + SESSION_TTL_MS;
    return { cookie: `${id}.${exp}.${this.mac(`session.${id}.${exp}`)}`, maxAgeS: SESSION_TTL_MS / 1000 };
  }

  /** The session id of a valid, unexpired cookie value. */
  session(value: string | undefined, now = Date.now()): string | undefined {
    const parts = value?.split(".");
    if (!parts || parts.length !== 3) return undefined;
    const [id, exp, mac] = parts;
    if (!same(mac, this.mac(`session.${id}.${exp}`)) || !(Number(exp) > now)) return undefined;
    return id;
  }

  csrf(sessionId: string): string {
    return this.mac(`csrf.${sessionId}`);
  }

  csrfValid(sessionId: string, token: string | undefined): boolean {
    return token !== undefined && same(token, this.csrf(sessionId));
  }

  private mac(s: string): string {
    return createHmac("sha256", this.key).update(s).digest("base64url");
  }
}

function same(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}

export function readCookie(header: string | undefined, name: string): string | undefined {
  for (const part of header?.split(";") ?? []) {
    const eq = part.indexOf("=");
    if (eq > 0 && part.slice(0, eq).trim() === name) return part.slice(eq + 1).trim();
  }
  return undefined;
}
