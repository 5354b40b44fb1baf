// Opens report pages in headless Chromium, measures what a reader would see, and takes screenshots.
//
// The browser is the Chromium build that the npm package @sparticuz/chromium ships inside itself
// (a devDependency, so `npm ci` brings it; nothing is downloaded at run time), driven by
// puppeteer-core. Its brotli-packed binary is unpacked once into .cache/chromium-<version>/.
//
//   node tests/pipeline_code/container/monitoring/report_browser/render.mjs --out DIR
//        [--width 1280] [--height 900] [--max-height N] PAGE.html...
//
// stdout: {"pages": [{file, screenshot, errors, charts, text, links, scrollWidth, viewportWidth}]}
// charts: every <svg>: its rendered size and the text of its <text> elements that has a size.
// links: every <a href>: the href, and for file links whether the target exists.

import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { execFileSync } from "node:child_process";
import { basename, dirname, join, resolve } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { brotliDecompressSync } from "node:zlib";

// The repository (node_modules/, .cache/): the nearest folder above this script with a package.json,
// so the script can sit at any depth under tests/.
function repositoryRoot(start) {
  for (let dir = start; ; dir = dirname(dir)) {
    if (existsSync(join(dir, "package.json"))) return dir;
    if (dirname(dir) === dir) throw new Error(`no package.json above ${start}`);
  }
}
const ROOT = repositoryRoot(dirname(fileURLToPath(import.meta.url)));

function parseArgs(argv) {
  const options = { out: null, width: 1280, height: 900, maxHeight: 0, pages: [] };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (arg === "--out") options.out = argv[++i];
    else if (arg === "--width") options.width = Number(argv[++i]);
    else if (arg === "--height") options.height = Number(argv[++i]);
    else if (arg === "--max-height") options.maxHeight = Number(argv[++i]);
    else options.pages.push(resolve(arg));
  }
  if (!options.out || !options.pages.length) {
    throw new Error("usage: render.mjs --out DIR [--width W] [--height H] [--max-height N] PAGE.html...");
  }
  return options;
}

// Unpack into the project's cache, not the shared /tmp the package defaults to: another checkout
// or another version must not find (or overwrite) this one's files.
async function browserPaths() {
  const pkg = JSON.parse(readFileSync(join(ROOT, "node_modules", "@sparticuz", "chromium", "package.json"), "utf8"));
  const cache = join(ROOT, ".cache", `chromium-${pkg.version}`);
  const complete = join(cache, ".unpacked");
  // The package reuses whatever binary it finds, so a half-unpacked one (an interrupted first run)
  // would fail every later run: start again unless the last unpacking finished.
  if (!existsSync(complete)) rmSync(cache, { recursive: true, force: true });
  mkdirSync(cache, { recursive: true });
  process.env.TMPDIR = cache; // where the package unpacks (os.tmpdir() is read at each call)
  const { default: chromium } = await import("@sparticuz/chromium");
  const executable = await chromium.executablePath();
  // The binary needs NSS. Debian-like machines have it (libnss3); where they do not, use the copy
  // the package ships for Amazon Linux 2023 (built against an older glibc, so it loads here too).
  const env = {};
  if (process.env.REPORT_BROWSER_BUNDLED_LIBS === "1" || !systemHasNss()) {
    const libs = join(cache, "al2023", "lib");
    if (!existsSync(libs)) {
      untarBrotli(join(ROOT, "node_modules", "@sparticuz", "chromium", "bin", "al2023.tar.br"), join(cache, "al2023"));
    }
    env.LD_LIBRARY_PATH = [libs, process.env.LD_LIBRARY_PATH].filter(Boolean).join(":");
  }
  writeFileSync(complete, `${pkg.version}\n`);
  // The package's fonts.conf names /tmp/fonts; point fontconfig at the unpacked copy instead, so
  // pages render with the same fonts on every machine (a bare CI machine may have none).
  const fontsConf = join(cache, "fonts.conf");
  writeFileSync(
    fontsConf,
    `<?xml version="1.0"?><!DOCTYPE fontconfig SYSTEM "fonts.dtd"><fontconfig>` +
      `<dir>${join(cache, "fonts")}</dir><cachedir>${join(cache, "fonts-cache")}</cachedir></fontconfig>\n`,
  );
  return { executable, args: chromium.args, fontsConf, env };
}

function untarBrotli(file, directory) {
  // A few MB: unpacked in memory and handed to tar.
  mkdirSync(directory, { recursive: true });
  execFileSync("tar", ["-x", "-C", directory], { input: brotliDecompressSync(readFileSync(file)) });
}

function systemHasNss() {
  try {
    const listed = execFileSync("ldconfig", ["-p"], { encoding: "utf8" });
    return listed.includes("libnss3.so") && listed.includes("libnspr4.so");
  } catch {
    return false;
  }
}

function measure() {
  const charts = [...document.querySelectorAll("svg")].map((svg) => {
    const box = svg.getBoundingClientRect();
    const texts = [...svg.querySelectorAll("text")]
      .filter((t) => {
        const b = t.getBoundingClientRect();
        return b.width > 0 && b.height > 0;
      })
      .map((t) => t.textContent);
    return {
      label: svg.getAttribute("aria-label") || "",
      width: box.width,
      height: box.height,
      right: box.right + window.scrollX,
      texts,
      bars: svg.querySelectorAll("rect").length,
    };
  });
  const links = [...document.querySelectorAll("a[href]")].map((a) => ({
    href: a.getAttribute("href"),
    url: a.href,
    text: a.textContent,
  }));
  return {
    title: document.title,
    text: document.body.innerText,
    headings: [...document.querySelectorAll("h1,h2,h3")].map((h) => h.textContent),
    charts,
    links,
    scrollWidth: document.documentElement.scrollWidth,
    viewportWidth: window.innerWidth,
  };
}

async function main() {
  const options = parseArgs(process.argv.slice(2));
  mkdirSync(options.out, { recursive: true });
  const { executable, args, fontsConf, env } = await browserPaths();
  const { default: puppeteer } = await import("puppeteer-core");
  const browser = await puppeteer.launch({
    executablePath: executable,
    headless: "shell",
    args,
    env: { ...process.env, ...env, FONTCONFIG_FILE: fontsConf },
    timeout: 120000,
  });
  const pages = [];
  const taken = new Set();
  try {
    for (const file of options.pages) {
      const page = await browser.newPage();
      await page.setViewport({ width: options.width, height: options.height, deviceScaleFactor: 1 });
      const errors = [];
      page.on("console", (message) => {
        if (message.type() === "error") errors.push(`console: ${message.text()}`);
      });
      page.on("pageerror", (error) => errors.push(`page: ${error.message}`));
      page.on("requestfailed", (request) => errors.push(`request: ${request.url()} ${request.failure()?.errorText}`));
      const response = await page.goto(pathToFileURL(file).href, { waitUntil: "load" });
      if (!response || !response.ok()) errors.push(`load: ${response ? response.status() : "no response"}`);
      const result = await page.evaluate(measure);
      for (const link of result.links) {
        link.exists = link.url.startsWith("file:") ? existsSync(fileURLToPath(link.url.split("#")[0])) : null;
      }
      // <monitor>/yyyy/mm/dd/hh/<run id>/report.html -> <monitor>.png (-<n> if taken already)
      let name = basename(resolve(dirname(file), "..", "..", "..", "..", "..")) || "page";
      if (taken.has(name)) name = `${name}-${pages.length}`;
      taken.add(name);
      const screenshot = join(options.out, `${name}.png`);
      const height = await page.evaluate(() => document.documentElement.scrollHeight);
      const clipHeight = options.maxHeight ? Math.min(height, options.maxHeight) : height;
      await page.screenshot({
        path: screenshot,
        clip: { x: 0, y: 0, width: options.width, height: clipHeight },
        captureBeyondViewport: true,
      });
      pages.push({ file, screenshot, errors, ...result });
      await page.close();
    }
  } finally {
    await browser.close();
  }
  process.stdout.write(JSON.stringify({ pages }) + "\n");
}

main().catch((error) => {
  process.stderr.write(`${error.stack || error}\n`);
  process.exit(1);
});
