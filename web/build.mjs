// build.mjs bundles the UI into dist/ (index.html, assets/app-HASH.js,
// assets/app-HASH.css), which the Go package web embeds; with --tests it
// bundles test/*.test.ts into .test/ for node --test instead.
//
// The bundle is committed and .ci/run rebuilds it and asks git whether it
// changed, so the build must be deterministic: no timestamps, no absolute
// paths, no source maps, file names from content hashes.
//
// The generated protobuf code is imported from client/ts/src/gen, its one
// home. Its imports of @bufbuild/protobuf are resolved here, from web/'s
// own node_modules (resolveFromWeb), so that the bundle is the same
// whether or not client/ts/node_modules exists.
import * as esbuild from "esbuild";
import { readFile, rm, writeFile, mkdir, readdir } from "node:fs/promises";
import { basename, dirname, join } from "node:path";
import { createHash } from "node:crypto";
import { fileURLToPath } from "node:url";

const web = dirname(fileURLToPath(import.meta.url));
const tests = process.argv.includes("--tests");

/** @type {esbuild.Plugin} */
const resolveFromWeb = {
  name: "resolve-from-web",
  setup(build) {
    build.onResolve({ filter: /^@bufbuild\/protobuf(\/.*)?$/ }, async (args) => {
      if (args.pluginData === "from-web") return undefined;
      const r = await build.resolve(args.path, { kind: args.kind, resolveDir: web, pluginData: "from-web" });
      // sideEffects too: the same file is also reached by relative imports
      // inside the package, resolved with its package.json's "sideEffects":
      // false, and esbuild keeps whichever resolution came first, so
      // leaving it out made the bundle differ from one build to the next.
      return { path: r.path, sideEffects: r.sideEffects, errors: r.errors, warnings: r.warnings };
    });
  },
};

const common = {
  absWorkingDir: web,
  bundle: true,
  target: "es2022",
  legalComments: "none",
  logLevel: "warning",
  plugins: [resolveFromWeb],
};

if (tests) {
  await rm(join(web, ".test"), { recursive: true, force: true });
  const entryPoints = (await readdir(join(web, "test"))).filter((f) => f.endsWith(".test.ts")).map((f) => join("test", f));
  await esbuild.build({ ...common, entryPoints, outdir: ".test", platform: "node", format: "esm" });
} else {
  await rm(join(web, "dist"), { recursive: true, force: true });
  const result = await esbuild.build({
    ...common,
    entryPoints: { app: "src/app.ts" },
    outdir: "dist/assets",
    format: "esm",
    platform: "browser",
    minify: true,
    write: false,
  });
  // Each file is named by a hash of its content, so it can be cached for
  // good; esbuild's own [hash] also covers where the checkout is, so two
  // checkouts would name the same bytes differently. index.html names them.
  await mkdir(join(web, "dist/assets"), { recursive: true });
  const names = {};
  for (const out of result.outputFiles) {
    const file = basename(out.path);
    const hash = createHash("sha256").update(out.contents).digest("hex").slice(0, 12);
    const hashed = file.replace(/\.(\w+)$/, `-${hash}.$1`);
    names[file] = hashed;
    await writeFile(join(web, "dist/assets", hashed), out.contents);
  }
  let html = await readFile(join(web, "src/index.html"), "utf8");
  html = html.replace(/\{\{([\w.]+)\}\}/g, (_, name) => {
    if (!names[name]) throw new Error(`src/index.html names ${name}, which the build did not write`);
    return names[name];
  });
  await writeFile(join(web, "dist/index.html"), html);
}
