import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DEFAULT_BOOT_ARGS } from "../../src/app/images.js";
import { REPO, built, runIn, startTestDaemon, type TestDaemon } from "../helpers/daemon.js";
import { builtDebianImage, guestSkipReason, registerArgs } from "../helpers/guest-image.js";
import { pingCommand } from "../helpers/icmp.js";
import { tcpAnswers } from "../helpers/leaks.js";
import { createNetns, createUpstream, httpGetFrom, startHttpServer, type HttpServer, type Netns, type Upstream } from "../helpers/netns.js";

const skip = built() ?? guestSkipReason();

interface VmJson {
  vm: { name: string; ip: string; state: string; tap?: string };
}

const GATEWAY = "172.30.0.1";

/**
 * Issue 11's network layers against real Debian guests under QEMU. Three guests share every
 * assertion: a (NAT, -p 18080:4096), b (no NAT, no peers) and c (--peers a).
 */
describe.skipIf(skip)(`e2e: guest isolation with real guests${skip ? ` (skipped: ${skip})` : ""}`, () => {
  let ns: Netns;
  let up: Upstream;
  let d: TestDaemon;
  const ip: Record<string, string> = {};
  const listeners: HttpServer[] = [];

  /** One SSH round trip per guest: `probe` lines print `<label> open|closed`. */
  const ssh = (vm: string, cmd: string) => d.cli(["vm", "ssh", vm, "--", cmd], { timeoutMs: 120_000 });
  const tcp = (label: string, host: string, port: number) =>
    `if timeout 3 bash -c 'exec 3<>/dev/tcp/${host}/${port}' 2>/dev/null; then echo "${label} open"; else echo "${label} closed"; fi`;
  const ping = (label: string, host: string) => `if ${pingCommand(host)} >/dev/null 2>&1; then echo "${label} open"; else echo "${label} closed"; fi`;
  const probe = async (vm: string, checks: string[]) => {
    const r = await ssh(vm, checks.join("; "));
    expect(r.code, r.stderr).toBe(0);
    return Object.fromEntries(
      r.stdout
        .trim()
        .split("\n")
        .map((l) => l.split(" ") as [string, string]),
    );
  };

  beforeAll(async () => {
    ns = await createNetns("iso");
    up = await createUpstream(ns);
    // Upstream side: the public test host, a metadata address and a private range the host routes to.
    await up.ns.exec("ip", ["addr", "add", "169.254.169.254/32", "dev", "wan0"]);
    await up.ns.exec("ip", ["addr", "add", "10.9.0.1/24", "dev", "wan0"]);
    listeners.push(await up.startHttpServer(8080));
    listeners.push(await startHttpServer(up.ns, 80, "169.254.169.254"));
    listeners.push(await startHttpServer(up.ns, 8081, "10.9.0.1"));
    // Host side (bangerd's namespace): a listener on the bridge address and one on the host's other address.
    // Generous waits: three TCG guests on a loaded 2-core host start opencode slowly.
    d = await startTestDaemon({ ns, config: { memory_mib: 1024, work_disk_gib: 2, ssh_timeout_s: 600, service_timeout_s: 900, op_timeout_s: 1800 } });
    listeners.push(await startHttpServer(ns, 7790, GATEWAY));
    listeners.push(await startHttpServer(ns, 7791, up.vmAddress));
    const reg = await d.cli(registerArgs(builtDebianImage()!, "debian-iso-1"), { timeoutMs: 300_000 });
    expect(reg.stderr).toBe("");
    // b is only ever reached on port 22: the same boot set with opencode masked spares a TCG cold start of it.
    const lean = await d.cli(
      [...registerArgs(builtDebianImage()!, "debian-iso-ssh", { services: false }), "--boot-args", `${DEFAULT_BOOT_ARGS} systemd.mask=opencode.service`],
      {
        timeoutMs: 300_000,
      },
    );
    expect(lean.stderr).toBe("");
    const create = async (args: string[], image = "debian-iso-1") => {
      const r = await d.cli(["--json", "vm", "create", "--image", image, ...args], { timeoutMs: 600_000 });
      if (r.code !== 0) console.error(r.stdout, r.stderr);
      expect(r.code).toBe(0);
      const vm = r.json<VmJson>().vm;
      ip[vm.name] = vm.ip;
    };
    await create(["--name", "a", "--nat", "-p", "18080:4096"]);
    // b and c boot side by side: c needs a to exist, b needs nothing.
    await Promise.all([create(["--name", "b"], "debian-iso-ssh"), create(["--name", "c", "--peers", "a"])]);
  }, 2_400_000);

  afterAll(async () => {
    for (const l of listeners) await l.stop();
    await d?.destroy();
    await up?.destroy();
    await ns?.destroy();
  });

  it("guests do not reach each other (TCP and ICMP); peers a and c do, both ways", async () => {
    const fromA = await probe("a", [tcp("b-ssh", ip.b!, 22), ping("b-icmp", ip.b!), tcp("c-ssh", ip.c!, 22), ping("c-icmp", ip.c!)]);
    expect(fromA).toEqual({ "b-ssh": "closed", "b-icmp": "closed", "c-ssh": "open", "c-icmp": "open" });
    const fromB = await probe("b", [tcp("a-ssh", ip.a!, 22), ping("a-icmp", ip.a!), tcp("c-opencode", ip.c!, 4096), ping("c-icmp", ip.c!)]);
    expect(fromB).toEqual({ "a-ssh": "closed", "a-icmp": "closed", "c-opencode": "closed", "c-icmp": "closed" });
    const fromC = await probe("c", [tcp("a-opencode", ip.a!, 4096), ping("a-icmp", ip.a!), tcp("b-ssh", ip.b!, 22)]);
    expect(fromC).toEqual({ "a-opencode": "open", "a-icmp": "open", "b-ssh": "closed" });
  });

  it("a guest reaches no host port, no metadata, no private range upstream, but does reach the public upstream", async () => {
    const fromA = await probe("a", [
      tcp("gateway", GATEWAY, 7790),
      tcp("host-other", up.vmAddress, 7791),
      ping("gateway-icmp", GATEWAY),
      tcp("metadata", "169.254.169.254", 80),
      tcp("private", "10.9.0.1", 8081),
      tcp("public", up.address, 8080),
    ]);
    expect(fromA).toEqual({ gateway: "closed", "host-other": "closed", "gateway-icmp": "closed", metadata: "closed", private: "closed", public: "open" });
    // Without --nat a guest gets no further than the gateway's link.
    const fromB = await probe("b", [tcp("public", up.address, 8080), tcp("gateway", GATEWAY, 7790)]);
    expect(fromB).toEqual({ public: "closed", gateway: "closed" });
    // The listeners that stayed silent do answer the host: the guests were stopped, not the servers.
    expect((await httpGetFrom(ns, `http://${GATEWAY}:7790/`)).ok).toBe(true);
    expect((await httpGetFrom(ns, "http://10.9.0.1:8081/")).ok).toBe(true);
    expect(await listeners[1]!.peers()).toEqual([]);
    const doctor = await d.cli(["doctor"], { timeoutMs: 120_000 });
    expect(doctor.stdout).toMatch(/PASS\s+guest->host/);
    expect(doctor.stdout).toMatch(/PASS\s+guest<->guest\s+TAPs are isolated bridge ports; 1 peer pair/);
  });

  it("-p 18080:4096 answers on 127.0.0.1 in bangerd's namespace and survives a daemon restart", async () => {
    const get = () => httpGetFrom(ns, "http://127.0.0.1:18080/", 10_000);
    expect(await tcpAnswers(ns, "127.0.0.1", 18080)).toBe(true);
    expect((await get()).ok).toBe(true);
    const ls = await d.cli(["vm", "port", "ls", "a"]);
    expect(ls.stdout).toMatch(/127\.0\.0\.1:18080\s+4096\s+yes/);
    await d.stop();
    expect(await tcpAnswers(ns, "127.0.0.1", 18080)).toBe(false);
    await d.start();
    expect((await get()).ok).toBe(true);
    // and the peers came back from the store: c still reaches a, b still does not
    const fromC = await probe("c", [tcp("a-ssh", ip.a!, 22), tcp("b-ssh", ip.b!, 22)]);
    expect(fromC).toEqual({ "a-ssh": "open", "b-ssh": "closed" });
    const dup = await d.cli(["vm", "port", "add", "b", "18080:22"]);
    expect(dup.code).toBe(1);
    expect(dup.stderr).toMatch(/18080 is already forwarded/);
  });

  it("vm rm takes the forward and the peering with it, and leaves nothing behind", async () => {
    expect((await d.cli(["vm", "rm", "--force", "a"], { timeoutMs: 120_000 })).code).toBe(0);
    expect(await tcpAnswers(ns, "127.0.0.1", 18080)).toBe(false);
    const peers = await ns.exec("nft", ["-j", "list", "set", "bridge", "banger", "peers"]);
    expect(peers.stdout).not.toMatch(/concat/);
    for (const n of ["b", "c"]) expect((await d.cli(["vm", "rm", "--force", n], { timeoutMs: 120_000 })).code).toBe(0);
    const verify = await runIn(ns, join(REPO, "verify.sh"), [], { env: { BANGER_CONFIG: d.configPath } });
    expect(verify.stdout).toMatch(/no leaks/);
  });
});
