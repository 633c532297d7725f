import type { Hono } from "hono";
import type { ApiEnv } from "./env.js";
import type { AppDeps } from "../app/deps.js";
import { imageSnapshot, snapshotImage } from "../app/image-snapshot.js";
import type { ImageService } from "../app/images.js";

/** `POST /images/:name/snapshot` takes the image's golden snapshot; `GET /images/:name` lists it. */
export function snapshotRoutes(api: Hono<ApiEnv>, d: AppDeps, images: ImageService): void {
  // The client going away cancels the snapshot, and the golden VM is undone.
  api.post("/images/:name/snapshot", async (c) => c.json({ snapshot: await snapshotImage(d, c.req.param("name"), { signal: c.req.raw.signal }) }, 201));
  api.get("/images/:name", async (c) => {
    const image = images.get(c.req.param("name"));
    return c.json({ image, snapshot: (await imageSnapshot(d, image)) ?? null });
  });
}
