import { Hono } from "hono";
import { describe, expect, it } from "vitest";
import { errorResponse } from "../../src/api/errors.js";
import { createVmBody, registerImageBody } from "../../src/api/schemas.js";
import { BangerError, ERROR_STATUS, asBangerError } from "../../src/domain/errors.js";

function app(thrower: () => unknown) {
  const h = new Hono();
  h.onError((e, c) => errorResponse(c, e));
  h.get("/x", () => { throw thrower(); });
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
    const res = await app(() => { try { createVmBody.parse({ image: "d", vcpus: "two" }); } catch (e) { return e; } }).request("/x");
    expect(res.status).toBe(400);
    const body = (await res.json()) as { error: { code: string; message: string } };
    expect(body.error.code).toBe("BAD_REQUEST");
    expect(body.error.message).toContain("vcpus");
  });

  it("names unknown fields", async () => {
    const res = await app(() => { try { registerImageBody.parse({ name: "a", kernel: "/k", rootfs: "/r", colour: 1 }); } catch (e) { return e; } }).request("/x");
    expect(((await res.json()) as { error: { message: string } }).error.message).toContain("colour");
  });

  it("wraps unknown errors as INTERNAL 500 and keeps BangerErrors", async () => {
    const res = await app(() => new Error("kaput")).request("/x");
    expect(res.status).toBe(500);
    expect(((await res.json()) as { error: { code: string } }).error.code).toBe("INTERNAL");
    const be = new BangerError("VM_NOT_FOUND", "x");
    expect(asBangerError(be)).toBe(be);
  });
});
