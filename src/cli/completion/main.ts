import { completeMain } from "./names.js";

// Entry of build/bundle/banger-complete.cjs: `banger __complete …` without the command tree.
void completeMain(process.argv.slice(3))
  .catch(() => undefined)
  .finally(() => process.exit(0));
