// The console's browser test: headless Chromium, driven by playwright-core, against a real
// `queuematch dev`.
//
//   node tests/browser/console.mjs --queuematch BIN --out DIR [--screenshot FILE]
//
// It starts `queuematch dev` on a free port with a scratch home, opens /console, and checks that:
//   1. without a token the page asks for one, and a player's token is refused by the stream;
//   2. with the operator token from the URL `queuematch dev` prints, the stream goes live;
//   3. ten players submitted to ranked-5v5 with `queuematch submit` make one session, which appears
//      on the page, is drawn with its session-placement graph, the state it is in highlighted while
//      it is placed (WaitForServer: the server is starting), and reaches ACTIVE, its graph showing the
//      path taken and the state it ended in.
// Screenshots of each step go to DIR (the test's artefacts); --screenshot also writes the final
// one to FILE (docs/console.png). Playwright-core is found in $QUEUEMATCH_PLAYWRIGHT (a directory
// holding node_modules/playwright-core), Chromium at $CHROMIUM (default /usr/bin/chromium).

import { spawn, execFileSync } from "node:child_process";
import { createRequire } from "node:module";
import { mkdtempSync, mkdirSync, rmSync, copyFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve, dirname } from "node:path";
import { fileURLToPath } from "node:url";

const args = Object.fromEntries(
  process.argv.slice(2).reduce((pairs, arg, i, all) => {
    if (arg.startsWith("--")) pairs.push([arg.slice(2), all[i + 1]]);
    return pairs;
  }, []),
);
const repo = resolve(dirname(fileURLToPath(import.meta.url)), "../..");
const queuematch = args.queuematch ?? fail("--queuematch BIN is required");
const out = resolve(args.out ?? fail("--out DIR is required"));
const playwrightDir = process.env.QUEUEMATCH_PLAYWRIGHT ?? fail("QUEUEMATCH_PLAYWRIGHT is not set");
const chromiumPath = process.env.CHROMIUM ?? "/usr/bin/chromium";
const { chromium } = createRequire(join(playwrightDir, "package.json"))("playwright-core");

function fail(message) {
  console.error(`console test: ${message}`);
  process.exit(2);
}

const TIMEOUT = 60_000;
mkdirSync(out, { recursive: true });
const scratch = mkdtempSync(join(tmpdir(), "queuematch-console-"));
const home = join(scratch, "home");
let dev = null;
let browser = null;
let shot = 0;

async function screenshot(page, name) {
  shot += 1;
  const file = join(out, `${String(shot).padStart(2, "0")}-${name}.png`);
  await page.screenshot({ path: file, fullPage: true });
  console.log(`  screenshot ${file}`);
  return file;
}

// Starts `queuematch dev` and resolves with its URL and the console URL it prints.
function startDev() {
  return new Promise((resolvePromise, reject) => {
    dev = spawn(queuematch, ["dev", "--port", "0", "--home", home], {
      cwd: repo,
      stdio: ["ignore", "pipe", "pipe"],
      env: { ...process.env, RUST_LOG: process.env.RUST_LOG ?? "warn" },
    });
    let stdout = "";
    let stderr = "";
    const timer = setTimeout(() => reject(new Error(`queuematch dev did not start:\n${stderr}`)), TIMEOUT);
    dev.stderr.on("data", (d) => { stderr += d; });
    dev.stdout.on("data", (d) => {
      stdout += d;
      const url = stdout.match(/^queuematch dev: listening on (\S+)$/m)?.[1];
      const consoleUrl = stdout.match(/^console: (\S+)$/m)?.[1];
      if (url && consoleUrl) {
        clearTimeout(timer);
        resolvePromise({ url, consoleUrl });
      }
    });
    dev.on("exit", (code) => reject(new Error(`queuematch dev exited (${code}):\n${stderr}`)));
  });
}

function cli(...argv) {
  return execFileSync(queuematch, [...argv, "--home", home], { cwd: repo, encoding: "utf8" }).trim();
}

// Ten players who make one ranked-5v5 match: per team a tank, a healer and three damage dealers,
// skills within the rule set's 150 points and the teams balanced within 40.
const PLAYERS = [
  ["tank-a", "tank", 1510], ["healer-a", "healer", 1490], ["dps-a1", "dps", 1520], ["dps-a2", "dps", 1480], ["dps-a3", "dps", 1500],
  ["tank-b", "tank", 1505], ["healer-b", "healer", 1495], ["dps-b1", "dps", 1515], ["dps-b2", "dps", 1485], ["dps-b3", "dps", 1502],
];

async function main() {
  const { url, consoleUrl } = await startDev();
  console.log(`queuematch dev on ${url}`);
  browser = await chromium.launch({
    executablePath: chromiumPath,
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"],
  });
  const context = await browser.newContext({ viewport: { width: 1400, height: 1000 } });
  const page = await context.newPage();
  page.setDefaultTimeout(TIMEOUT);
  const problems = [];
  page.on("pageerror", (e) => problems.push(`page error: ${e.message}`));
  page.on("console", (m) => { if (m.type() === "error") problems.push(`console error: ${m.text()}`); });
  page.on("requestfailed", (r) => problems.push(`request failed: ${r.url()}`));

  // 1. No token: the page asks for one. A player's token: the stream refuses it.
  console.log("1. the page asks for an operator token");
  await page.goto(`${url}/console`);
  await page.locator("#login").waitFor({ state: "visible" });
  await screenshot(page, "asks-for-token");
  await page.fill("#login input[name=token]", cli("token", "--player", "not-an-operator"));
  await page.click("#login button");
  await page.locator("#login[data-message]").waitFor({ state: "visible" });
  if (await page.locator("#views").isVisible()) throw new Error("a player's token opened the console");
  // The refusals above are the WebSocket's, expected: only what follows must be clean.
  problems.length = 0;

  // 2. The operator's URL: the stream goes live, the token leaves the address bar.
  console.log("2. the operator's console URL goes live");
  await page.goto("about:blank");
  // Record every state drawn as current: the highlight is live, so it must be caught as it happens.
  await page.addInitScript(() => {
    window.seenCurrent = [];
    new MutationObserver(() => {
      for (const node of document.querySelectorAll(".workflow[data-definition=session-placement] g.node.current")) {
        const state = node.dataset.state;
        const status = document.querySelector("#session")?.dataset.status;
        const last = window.seenCurrent[window.seenCurrent.length - 1];
        if (!last || last.state !== state || last.status !== status) window.seenCurrent.push({ state, status });
      }
    }).observe(document, { subtree: true, childList: true, attributes: true });
  });
  await page.goto(consoleUrl);
  await page.locator("#connection[data-state=live]").waitFor();
  if (page.url().includes("token=")) throw new Error(`the token stayed in the address bar: ${page.url()}`);
  await page.locator("#sessions .empty").waitFor({ state: "visible" });
  await screenshot(page, "live-empty");

  // 3. Ten players queue for ranked-5v5: the session appears, is placed, and reaches ACTIVE.
  console.log("3. ten players queue for ranked-5v5");
  for (const [player, role, skill] of PLAYERS) {
    cli("submit", "--url", url, "--queue", "ranked-5v5", "--player", player,
      "--attr", `skill=${skill}`, "--attr", `roles=["${role}"]`);
  }
  const row = page.locator("#sessions tbody tr[data-session-id]");
  await row.first().waitFor();
  if ((await row.count()) !== 1) throw new Error(`expected one session, the page shows ${await row.count()}`);
  const sessionId = await row.first().getAttribute("data-session-id");
  console.log(`  session ${sessionId} appeared (${await row.first().getAttribute("data-status")})`);
  await page.locator(`#session[data-session-id="${sessionId}"] .workflow[data-definition=session-placement] svg`).waitFor();
  await screenshot(page, "session-placing");
  await page.locator(`#sessions tbody tr[data-session-id="${sessionId}"][data-status=ACTIVE]`).waitFor();
  await page.locator(`#session[data-status=ACTIVE] .workflow[data-definition=session-placement][data-status=SUCCEEDED]`).waitFor();
  const graph = page.locator(".workflow[data-definition=session-placement] svg");
  const visited = await graph.locator("g.node.visited").evaluateAll((nodes) => nodes.map((n) => n.dataset.state));
  for (const state of ["NeedsAcceptance", "CreateSession", "Place", "WaitForServer", "Poll", "Activate", "Placed"]) {
    if (!visited.includes(state)) throw new Error(`${state} is not drawn as visited: ${visited}`);
  }
  for (const state of ["WaitForAcceptance", "ReleaseAndRequeue", "PlacementFailed"]) {
    if (visited.includes(state)) throw new Error(`${state} is drawn as visited, but was never entered: ${visited}`);
  }
  if ((await graph.locator("g.node.done[data-state=Placed]").count()) !== 1) throw new Error("Placed is not drawn as where the placement ended");
  if ((await graph.locator("path.edge.taken[data-from=Activate][data-to=Placed]").count()) !== 1) throw new Error("the edge Activate → Placed is not drawn as taken");
  const seen = await page.evaluate(() => window.seenCurrent);
  console.log(`  states drawn as current while it ran: ${seen.map((s) => `${s.state} (${s.status})`).join(", ")}`);
  if (!seen.some((s) => s.state === "WaitForServer" && s.status === "PLACING")) {
    throw new Error("the page never highlighted WaitForServer as the current state while the session was PLACING");
  }
  const timeline = await page.locator("#session .timeline tbody tr").count();
  if (timeline < 2) throw new Error(`the timeline shows ${timeline} entries`);
  await page.locator("#feed li[data-type=SessionStatusChanged]").first().waitFor();
  const final = await screenshot(page, "session-active");
  if (args.screenshot) {
    copyFileSync(final, resolve(args.screenshot));
    console.log(`  wrote ${resolve(args.screenshot)}`);
  }

  // 4. A newer session: the detail follows it, as it follows the newest until the operator picks one.
  console.log("4. the detail follows the newest session until one is picked");
  const duel = (a, b) => {
    for (const [player, skill] of [[a, 1500], [b, 1510]]) {
      cli("submit", "--url", url, "--queue", "ranked-1v1", "--player", player, "--attr", `skill=${skill}`);
    }
  };
  duel("duel-a", "duel-b");
  await page.locator("#sessions tbody tr[data-session-id]").nth(1).waitFor();
  const newest = await row.first().getAttribute("data-session-id");
  if (newest === sessionId) throw new Error("the newer session is not listed first");
  await page.locator(`#session[data-session-id="${newest}"]`).waitFor();

  // 5. The operator picks the first session: a third one appears, and the detail stays.
  console.log("5. a session picked stays watched when another arrives");
  await page.click(`#sessions tbody tr[data-session-id="${sessionId}"]`);
  await page.locator(`#session[data-session-id="${sessionId}"]`).waitFor();
  duel("duel-c", "duel-d");
  await page.locator("#sessions tbody tr[data-session-id]").nth(2).waitFor();
  await page.waitForTimeout(1000);
  const shown = await page.locator("#session").getAttribute("data-session-id");
  if (shown !== sessionId) throw new Error(`the picked session ${sessionId} gave way to ${shown}`);

  // 6. A phone's width: one column, nothing beyond the screen's edge.
  console.log("6. a narrow screen shows one column");
  await page.setViewportSize({ width: 360, height: 800 });
  const width = await page.evaluate(() => document.documentElement.scrollWidth);
  await screenshot(page, "narrow");
  if (width > 360) throw new Error(`at 360 px wide the page is ${width} px wide`);

  if (problems.length) throw new Error(`the page reported problems:\n${problems.join("\n")}`);
  console.log("console test: passed");
}

async function stop() {
  await browser?.close().catch(() => {});
  if (dev && dev.exitCode === null) {
    dev.removeAllListeners("exit");
    dev.kill("SIGKILL");
  }
  rmSync(scratch, { recursive: true, force: true });
}

main().then(
  async () => { await stop(); },
  async (e) => {
    console.error(`console test: FAILED: ${e.stack ?? e}`);
    console.error(`screenshots are in ${out}`);
    await stop();
    process.exit(1);
  },
);
