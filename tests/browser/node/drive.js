// Loads pages in headless Chromium and prints what each reported (tests/browser/node/page.js).
//
// Usage: node drive.js CHROMIUM TIMEOUT_MS URL...
//
// Prints one JSON object on stdout: the browser's version and, per URL, the page's
// `window.connectpyReport`. The page's console and errors go to stderr, where a failing test
// shows them.

import puppeteer from "puppeteer-core";

const [executablePath, timeout, ...urls] = process.argv.slice(2);
const browser = await puppeteer.launch({
  executablePath,
  headless: true,
  // Root in a container has no user namespaces for the sandbox; the page is our own.
  args: ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run"],
});
try {
  const reports = {};
  for (const url of urls) {
    const page = await browser.newPage();
    page.on("console", (message) => console.error(`page: ${message.type()}: ${message.text()}`));
    page.on("pageerror", (error) => console.error(`page error: ${error.message}`));
    await page.goto(url, { timeout: Number(timeout) });
    await page.waitForFunction(() => window.connectpyReport !== undefined, {
      timeout: Number(timeout),
    });
    reports[url] = await page.evaluate(() => window.connectpyReport);
    await page.close();
  }
  process.stdout.write(JSON.stringify({ browser: await browser.version(), reports }) + "\n");
} finally {
  await browser.close();
}
