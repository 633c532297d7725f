// What zod's `locales` namespace becomes in the bundles (scripts/bundle/bundle.mjs): English only,
// the locale zod already uses for its messages.
export { default as en } from "zod/v4/locales/en.js";
