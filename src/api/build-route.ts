import type { Hono } from "hono";
import type { ApiEnv } from "./env.js";
import { z } from "zod";
import type { AppDeps } from "../app/deps.js";
import { buildImage, checkBuild } from "../app/image-build.js";
import type { ImageService } from "../app/images.js";
import type { BuildEvent } from "../domain/build.js";
import { asBangerError } from "../domain/errors.js";
import { serviceSchema } from "./schemas.js";

const MAX_SCRIPT_BYTES = 1024 * 1024;

export const buildImageBody = z
  .object({
    from: z.string().min(1),
    name: z.string(),
    steps: z
      .array(
        z.discriminatedUnion("kind", [
          z.object({ kind: z.literal("script"), name: z.string().min(1).max(255), content: z.string().max(MAX_SCRIPT_BYTES), sha256: z.string() }).strict(),
          z
            .object({
              kind: z.literal("run"),
              command: z
                .string()
                .min(1)
                .max(64 * 1024),
            })
            .strict(),
        ]),
      )
      .max(256)
      .default([]),
    packages: z.array(z.string()).max(512).optional(),
    rootfsSize: z.string().max(32).optional(),
    nat: z.boolean().optional(),
    services: z.array(serviceSchema).max(32).optional(),
    timeoutMs: z
      .number()
      .int()
      .min(1_000)
      .max(24 * 3600_000)
      .optional(),
    promoteAs: z.string().optional(),
    workDiskGib: z.number().int().min(1).max(2048).optional(),
  })
  .strict();

/**
 * POST /images/build answers with NDJSON: one JSON object per line (BuildEvent), flushed as
 * it happens, ending with a `result` or an `error` line. Bad input is refused before the
 * stream starts, as a plain error envelope with its status. NDJSON rather than SSE because the
 * client is not a browser (EventSource cannot POST a body anyway) and a line of JSON needs no
 * framing beyond the newline. The client closing the connection cancels the build.
 */
export function buildRoute(
  api: Hono<ApiEnv>,
  d: AppDeps,
  images: ImageService,
  parseBody: (c: { req: { json(): Promise<unknown> } }) => Promise<unknown>,
): void {
  api.post("/images/build", async (c) => {
    const checked = checkBuild(d, buildImageBody.parse(await parseBody(c)));
    const signal = c.req.raw.signal;
    const enc = new TextEncoder();
    const gone = new AbortController();
    const stream = new ReadableStream<Uint8Array>({
      start(controller) {
        const emit = (e: BuildEvent) => {
          if (gone.signal.aborted) return;
          try {
            controller.enqueue(enc.encode(`${JSON.stringify(e)}\n`));
          } catch {
            // The stream was closed under us: the client left, and the build is being cancelled.
          }
        };
        const onGone = () => gone.abort();
        signal.addEventListener("abort", onGone, { once: true });
        void buildImage(d, images, checked, { signal: gone.signal, emit })
          .then(
            (image) => emit({ type: "result", image }),
            (e: unknown) => emit({ type: "error", error: asBangerError(e).toJSON() }),
          )
          .finally(() => {
            signal.removeEventListener("abort", onGone);
            try {
              controller.close();
            } catch {
              // already closed by a cancel
            }
          });
      },
      cancel() {
        gone.abort();
      },
    });
    return new Response(stream, { status: 200, headers: { "content-type": "application/x-ndjson", "cache-control": "no-store" } });
  });
}
