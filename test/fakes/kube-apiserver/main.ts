// Runs the fake API server as its own process, for e2e tests that put bangerd nodes beside it:
//   npx vite-node test/fakes/kube-apiserver/main.ts -- --listen 127.0.0.1:0 [--token T] [--history 1000]
// Prints one JSON line {"url": "..."} on stdout once it listens, and stops on SIGTERM/SIGINT.
import { parseArgs } from "node:util";
import { FakeKubeApiServer } from "./server.js";

const { values } = parseArgs({
  args: process.argv.slice(2).filter((a) => a !== "--"),
  options: {
    listen: { type: "string", default: "127.0.0.1:0" },
    token: { type: "string" },
    history: { type: "string" },
    "bookmark-interval-ms": { type: "string" },
    "no-scheduler": { type: "boolean", default: false },
  },
});
const at = values.listen.lastIndexOf(":");
const host = values.listen.slice(0, at).replace(/^\[|\]$/g, "");
const port = Number(values.listen.slice(at + 1));
if (at < 0 || !Number.isInteger(port)) {
  console.error(`--listen wants HOST:PORT, got "${values.listen}"`);
  process.exit(2);
}
const server = await FakeKubeApiServer.start({
  host,
  port,
  token: values.token,
  historyLimit: values.history ? Number(values.history) : undefined,
  bookmarkIntervalMs: values["bookmark-interval-ms"] ? Number(values["bookmark-interval-ms"]) : undefined,
  scheduler: !values["no-scheduler"],
});
process.stdout.write(`${JSON.stringify({ url: server.url })}\n`);
const stop = () => void server.close().then(() => process.exit(0));
process.on("SIGTERM", stop);
process.on("SIGINT", stop);
