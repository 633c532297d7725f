import { Hono } from "hono";
import { describe, expect, it } from "vitest";
import { errorResponse } from "../../src/api/errors.js";
import { createVmBody, registerImageBody } from "../../src/api/schemas.js";
import { BangerError, ERROR_STATUS, asBangerError, fromErrno, isCode } from "../../src/domain/errors.js";

function app(thrower: () => unknown) {
  const h = new Hono();
  h.onError((e, c) => errorResponse(c, e));
  h.get("/x", () => {
    throw thrower();
  });
  return h;
}

describe("error mapping", () => {
  it("maps every code to its status with the error envelope", async () => {
    for (const [code, status] of Object.entries(ERROR_STATUS)) {
      const res = await app(() => new BangerError(code as keyof typeof ERROR_STATUS, `boom ${code}`, { hint: "do x" })).request("/x");
      expect(res.status).toBe(status);
      expect(await res.json()).toEqual({ error: { code, message: `boom ${code}`, hint: "do x" } });
    }
  });

  it("turns a schema failure into BAD_REQUEST naming the field", async () => {
    const res = await app(() => {
      try {
        createVmBody.parse({ image: "d", vcpus: "two" });
      } catch (e) {
        return e;
      }
    }).request("/x");
    expect(res.status).toBe(400);
    const body = (await res.json()) as { error: { code: string; message: string } };
    expect(body.error.code).toBe("BAD_REQUEST");
    expect(body.error.message).toContain("vcpus");
  });

  it("names unknown fields", async () => {
    const res = await app(() => {
      try {
        registerImageBody.parse({ name: "a", kernel: "/k", rootfs: "/r", colour: 1 });
      } catch (e) {
        return e;
      }
    }).request("/x");
    expect(((await res.json()) as { error: { message: string } }).error.message).toContain("colour");
  });

  it("wraps unknown errors as INTERNAL 500 and keeps BangerErrors", async () => {
    const res = await app(() => new Error("kaput")).request("/x");
    expect(res.status).toBe(500);
    expect(((await res.json()) as { error: { code: string } }).error.code).toBe("INTERNAL");
    const be = new BangerError("VM_NOT_FOUND", "x");
    expect(asBangerError(be)).toBe(be);
  });

  it("gives host failures their own codes and a fix instead of INTERNAL", () => {
    const errno = (code: string, path?: string) => Object.assign(new Error(`${code}: something, open '${path}'`), { code, path });
    const full = asBangerError(errno("ENOSPC", "/var/lib/banger/vms/abc/known_hosts"));
    expect(full.code).toBe("DISK_FAILED");
    expect(full.message).toMatch(/no space left/);
    expect(full.hint).toContain("/var/lib/banger/vms/abc/known_hosts");
    expect(asBangerError(errno("EDQUOT", "/x")).code).toBe("DISK_FAILED");
    const denied = asBangerError(errno("EACCES", "/var/lib/banger/vms/abc"));
    expect(denied).toMatchObject({ code: "DISK_FAILED", message: expect.stringMatching(/permission denied/) });
    expect(denied.hint).toMatch(/owner and mode of \/var\/lib\/banger\/vms/);
    expect(asBangerError(errno("EMFILE")).code).toBe("HOST_RESOURCES");
    expect(asBangerError(errno("ENOMEM")).hint).toMatch(/memory/);
    // an errno nobody maps is still a bug to report, not a guess
    expect(asBangerError(errno("EBADF")).code).toBe("INTERNAL");
    expect(fromErrno(new Error("no code"))).toBeUndefined();
  });
});

describe("isCode", () => {
  it("matches a BangerError with any of the codes, and nothing else", () => {
    const e = new BangerError("TIMEOUT", "slow");
    expect(isCode(e, "TIMEOUT")).toBe(true);
    expect(isCode(e, "DISK_FAILED", "TIMEOUT")).toBe(true);
    expect(isCode(e, "DISK_FAILED")).toBe(false);
    expect(isCode(e)).toBe(false);
    expect(isCode(Object.assign(new Error("x"), { code: "TIMEOUT" }), "TIMEOUT")).toBe(false);
    expect(isCode(undefined, "TIMEOUT")).toBe(false);
  });
});
