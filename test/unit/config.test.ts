import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { loadConfig, type Env } from "../../src/config/load.js";
import { type BangerError } from "../../src/domain/errors.js";

function env(extra: Record<string, string> = {}, uid = 1000): Env {
  const home = mkdtempSync(join(tmpdir(), "banger-cfg-"));
  return {
    env: {
      XDG_CONFIG_HOME: join(home, "cfg"),
      XDG_STATE_HOME: join(home, "state"),
      XDG_RUNTIME_DIR: join(home, "run"),
      XDG_DATA_HOME: join(home, "data"),
      ...extra,
    },
    uid,
    home,
  };
}

function withFile(text: string): { e: Env; path: string } {
  const e = env();
  const path = join(e.home, "config.toml");
  writeFileSync(path, text);
  return { e: { ...e, env: { ...e.env, BANGER_CONFIG: path } }, path };
}

function loadError(e: Env): BangerError {
  try {
    loadConfig({ env: e });
  } catch (err) {
    return err as BangerError;
  }
  throw new Error("expected loadConfig to fail");
}

describe("config", () => {
  it("uses XDG defaults for a user and records sources", () => {
    const e = env();
    const c = loadConfig({ env: e });
    expect(c.fileExists).toBe(false);
    expect(c.config.vmm).toBe("firecracker");
    expect(c.paths.stateDir).toBe(join(e.env.XDG_STATE_HOME!, "banger"));
    expect(c.paths.socket).toBe(join(e.env.XDG_RUNTIME_DIR!, "banger", "bangerd.sock"));
    expect(c.paths.defaultSshKey).toBe(join(e.env.XDG_DATA_HOME!, "banger", "ssh", "id_ed25519"));
    expect(c.sources.vmm).toBe("default");
  });

  it("uses system paths for root without XDG variables", () => {
    const c = loadConfig({ env: { env: {}, uid: 0, home: "/root" } });
    expect(c.paths.stateDir).toBe("/var/lib/banger");
    expect(c.paths.socket).toBe("/run/banger/bangerd.sock");
  });

  it("reads a file and tracks where each value came from", () => {
    const { e, path } = withFile('vmm = "qemu"\ntap_pool_size = 0\n[web]\nlisten = ""\n');
    const c = loadConfig({ env: e });
    expect(c.config.vmm).toBe("qemu");
    expect(c.config.tap_pool_size).toBe(0);
    expect(c.config.web.listen).toBe("");
    expect(c.sources.vmm).toBe(`file:${path}`);
    expect(c.sources["web.listen"]).toBe(`file:${path}`);
    expect(c.sources.bridge).toBe("default");
  });

  it("flag beats env beats file for the socket", () => {
    const { e } = withFile('socket = "/tmp/from-file.sock"\n');
    expect(loadConfig({ env: e }).config.socket).toBe("/tmp/from-file.sock");
    const e2 = { ...e, env: { ...e.env, BANGER_SOCKET: "/tmp/env.sock" } };
    expect(loadConfig({ env: e2 }).sources.socket).toBe("env");
    expect(loadConfig({ env: e2, socketFlag: "/tmp/flag.sock" }).config.socket).toBe("/tmp/flag.sock");
  });

  it("names an unknown key and the file", () => {
    const { e, path } = withFile('vmn = "qemu"\n');
    const err = loadError(e);
    expect(err.code).toBe("INVALID_CONFIG");
    expect(err.message).toContain("'vmn'");
    expect(err.message).toContain(path);
    expect(err.hint).toContain("docs/config.md");
  });

  it("names a bad value, the key and what is allowed", () => {
    const err = loadError(withFile('vmm = "xen"\n').e);
    expect(err.message).toMatch(/'vmm'/);
    expect(err.message).toMatch(/firecracker|qemu/);
    const err2 = loadError(withFile('subnet = "10.0.0.0/8"\n').e);
    expect(err2.message).toMatch(/'subnet'.*CIDR/);
    const err3 = loadError(withFile("vcpus = 0\n").e);
    expect(err3.message).toContain("'vcpus'");
  });

  it("rejects TOML syntax errors and a missing explicit file", () => {
    expect(loadError(withFile("vmm = \n").e).message).toMatch(/cannot parse/);
    const e = env({ BANGER_CONFIG: "/nonexistent/banger.toml" });
    expect(loadError(e).message).toMatch(/does not exist/);
  });
});
