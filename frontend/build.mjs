// Builds the dashboard into broker/static: app.js, app.css and index.html.
// Deterministic on purpose (no sourcemap, no timestamps, no hashes): building twice from the
// same sources gives identical bytes, so the committed bundle can be checked in CI.
import { build } from "esbuild";
import { copyFile, mkdir } from "node:fs/promises";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const out = join(here, "..", "broker", "static");

await mkdir(out, { recursive: true });
await build({
  entryPoints: { app: join(here, "src", "main.tsx") },
  outdir: out,
  bundle: true,
  minify: true,
  format: "esm",
  target: "es2020",
  platform: "browser",
  jsx: "automatic",
  jsxImportSource: "preact",
  sourcemap: false,
  legalComments: "none",
  charset: "utf8",
  logLevel: "warning",
  define: { "process.env.NODE_ENV": '"production"' },
});
await build({
  entryPoints: { app: join(here, "src", "styles", "app.css") },
  outdir: out,
  bundle: true,
  minify: true,
  sourcemap: false,
  legalComments: "none",
  charset: "utf8",
  logLevel: "warning",
});
for (const name of ["index.html", "favicon.svg"]) {
  await copyFile(join(here, "src", name), join(out, name));
}
