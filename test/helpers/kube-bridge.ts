import { spawn, type ChildProcess } from "node:child_process";
import { createConnection, createServer, type Server } from "node:net";
import { join } from "node:path";
import type { Netns } from "./netns.js";

/**
 * The fake API server runs in the test process (root namespace, loopback); bangerd runs in its
 * own network namespace, which cannot reach that loopback. A Unix socket is shared through the
 * file system, so: socat listens on the namespace's loopback and relays to a Unix socket the test
 * process serves, which relays to the fake. No interface or route is touched anywhere.
 */
export async function bridgeIntoNetns(
  ns: Netns,
  dir: string,
  target: { host: string; port: number },
  nsPort: number,
  socketName = "kube-bridge.sock",
): Promise<{ url: string; close(): Promise<void> }> {
  const path = join(dir, socketName);
  const server: Server = createServer((c) => {
    const up = createConnection(target.port, target.host);
    c.pipe(up).pipe(c);
    const end = () => (c.destroy(), up.destroy());
    c.on("error", end);
    up.on("error", end);
  });
  await new Promise<void>((r) => server.listen(path, r));
  const relay: ChildProcess = spawn("ip", ["netns", "exec", ns.name, "socat", `TCP-LISTEN:${nsPort},bind=127.0.0.1,fork,reuseaddr`, `UNIX-CONNECT:${path}`], {
    stdio: "ignore",
  });
  // Wait until the namespace's port answers (socat is up).
  for (let i = 0; i < 100; i++) {
    const r = await ns.exec("sh", ["-c", `exec 3<>/dev/tcp/127.0.0.1/${nsPort} 2>/dev/null && echo up || true`], { allowFailure: true });
    if (r.stdout.includes("up")) break;
    await new Promise((res) => setTimeout(res, 50));
  }
  return {
    url: `http://127.0.0.1:${nsPort}`,
    async close() {
      relay.kill("SIGKILL");
      server.close();
    },
  };
}
