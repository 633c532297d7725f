import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    // A ceiling for hung tests only; guest boots under TCG on a loaded 2-core host can take minutes.
    testTimeout: 900_000,
    hookTimeout: 300_000,
    // Integration tests start real daemons and network namespaces; running
    // files in parallel on a 2-core host only makes guests boot slower.
    fileParallelism: false,
    reporters: ["default"],
  },
});
