import { createHash } from "node:crypto";

/** node:crypto's sha256 for the domain's image digest (domain/image-digest.ts takes the hash as an argument). */
export const sha256Hex = (text: string): string => createHash("sha256").update(text).digest("hex");
