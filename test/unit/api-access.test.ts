import { describe, expect, it } from "vitest";
import { apiRoutes } from "../../src/api/routes.js";
import { parseSsUnix } from "../../src/adapters/peer/peer-cred.js";
import type { Caller } from "../../src/domain/caller.js";
import { world } from "../helpers/app-world.js";

const GROUP = { name: "banger", gid: 990 };
const alice: Caller = { uid: 1001, gids: [1001, 990], name: "alice" };
const bob: Caller = { uid: 1002, gids: [1002, 990], name: "bob" };
const eve: Caller = { uid: 1003, gids: [1003], name: "eve" };
const root: Caller = { uid: 0, gids: [0], name: "root" };

/** The real routes over the fake-port world, with the caller chosen per request. */
function api() {
  const w = world();
  let who: Caller = root;
  const app = apiRoutes(w.d, { shutdown: () => undefined, identify: async () => who, apiGroup: GROUP });
  const call = async (as: Caller, method: string, path: string, body?: unknown) => {
    who = as;
    const res = await app.request(path, {
      method,
      headers: { "content-type": "application/json" },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    return { status: res.status, body: (await res.json()) as Record<string, any> };
  };
  return { w, call };
}

describe("who may do what through the API", () => {
  it("refuses callers outside the group on every route, with the fix", async () => {
    const { call } = api();
    const r = await call(eve, "GET", "/vms");
    expect(r.status).toBe(403);
    expect(r.body.error).toMatchObject({
      code: "FORBIDDEN",
      message: "user eve (uid 1003) is not in group banger, which may use bangerd",
      hint: expect.stringMatching(/usermod -aG banger eve/),
    });
  });

  it("members create and list; only the owner or root stop, remove, ssh, read the console and the password", async () => {
    const { w, call } = api();
    const created = await call(alice, "POST", "/vms", { image: "deb-1", name: "a1" });
    expect(created.status).toBe(201);
    expect(created.body.vm).toMatchObject({ ownerUid: 1001, ownerName: "alice" });

    expect((await call(bob, "GET", "/vms")).body.vms.map((v: { name: string }) => v.name)).toEqual(["a1"]);
    expect((await call(bob, "GET", "/vms?mine=true")).body.vms).toEqual([]);
    expect((await call(alice, "GET", "/vms?mine=true")).body.vms.map((v: { name: string }) => v.name)).toEqual(["a1"]);
    expect((await call(bob, "GET", "/vms/a1")).status).toBe(200);

    for (const [method, path] of [
      ["POST", "/vms/a1/stop"],
      ["DELETE", "/vms/a1?force=true"],
      ["GET", "/vms/a1/ssh"],
      ["GET", "/vms/a1/logs"],
      ["GET", "/vms/a1/access?secret=true"],
    ] as const) {
      const r = await call(bob, method, path, method === "POST" ? {} : undefined);
      expect(r.status, `${method} ${path}`).toBe(403);
      expect(r.body.error.message).toMatch(/VM a1 belongs to alice; only its owner or root may/);
    }
    expect(w.store.getVm("a1")?.state).toBe("running");

    const ssh = await call(alice, "GET", "/vms/a1/ssh");
    expect(ssh.status).toBe(200);
    expect(ssh.body.knownHosts).toMatch(/ssh-ed25519 HOSTKEY/);
    expect((await call(alice, "GET", "/vms/a1/access?secret=true")).body.services[0].password).toMatch(/^[A-Za-z0-9_-]{32}$/);
    expect((await call(root, "POST", "/vms/a1/stop", {})).status).toBe(200);
    expect((await call(alice, "DELETE", "/vms/a1")).status).toBe(200);
  });

  it("images and shutdown are root's", async () => {
    const { call } = api();
    for (const [method, path, body] of [
      ["POST", "/images", { name: "x-1", kernel: "/k", rootfs: "/r" }],
      ["DELETE", "/images/deb-1", undefined],
      ["POST", "/images/deb-1/promote", { alias: "deb" }],
      ["POST", "/images/deb-1/warm", {}],
      ["POST", "/shutdown", {}],
    ] as const) {
      const r = await call(alice, method, path, body);
      expect(r.status, `${method} ${path}`).toBe(403);
      expect(r.body.error.message).toMatch(/^only root may/);
    }
    expect((await call(alice, "GET", "/images")).status).toBe(200);
  });

  it("refuses a caller key that is not one OpenSSH line (nothing smuggled into authorized_keys)", async () => {
    const { call } = api();
    const bad = await call(alice, "POST", "/vms", { image: "deb-1", name: "k1", sshPublicKey: "ssh-ed25519 AAAA\ncommand=evil ssh-rsa BBBB" });
    expect(bad.status).toBe(400);
    expect(bad.body.error.message).toMatch(/sshPublicKey: expected one OpenSSH public key line/);
  });
});

describe("ss -xpnH parsing", () => {
  it("takes our inode, the peer's and the holders' pids", () => {
    const rows = parseSsUnix(
      [
        'u_str ESTAB 0 0 /run/banger/bangerd.sock 4242 * 4243 users:(("node",pid=10,fd=21))',
        'u_str ESTAB 0 0 * 4243 * 4242 users:(("banger",pid=77,fd=3),("banger",pid=78,fd=3))',
      ].join("\n"),
    );
    expect(rows).toEqual([
      { inode: "4242", peer: "4243", pids: [10] },
      { inode: "4243", peer: "4242", pids: [77, 78] },
    ]);
  });
});
