import type { Hono } from "hono";
import { z } from "zod";
import type { AppDeps } from "../app/deps.js";
import { imageDistribution } from "../app/image-pull.js";
import type { ImageService } from "../app/images.js";
import type { ApiEnv } from "./env.js";

const ref = z.string().min(1).max(2048);
export const pullBody = z
  .object({ source: ref.optional(), digest: z.string().max(80).optional(), name: z.string().max(128).optional(), insecure: z.boolean().optional() })
  .strict();
export const pushBody = z.object({ dest: ref, insecure: z.boolean().optional() }).strict();

/** Images by digest: `POST /images/pull` and `POST /images/:name/push`. The client going away cancels either. */
export function imageStoreRoutes(
  api: Hono<ApiEnv>,
  d: AppDeps,
  images: ImageService,
  parseBody: (c: { req: { json(): Promise<unknown> } }) => Promise<unknown>,
): void {
  api.post("/images/pull", async (c) => {
    const { insecure, ...input } = pullBody.parse(await parseBody(c));
    const out = await imageDistribution(d, images).pull(input, { signal: c.req.raw.signal, insecure });
    return c.json(out, out.present ? 200 : 201);
  });
  api.post("/images/:name/push", async (c) => {
    const { dest, insecure } = pushBody.parse(await parseBody(c));
    return c.json(await imageDistribution(d, images).push(c.req.param("name"), dest, { signal: c.req.raw.signal, insecure }));
  });
}
