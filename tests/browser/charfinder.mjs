#!/usr/bin/env node
// The charfinder web page in a real browser: headless Chromium (Debian's /usr/bin/chromium, or
// $CHROMIUM) driven by playwright-core. Starts aloop-charfinder on an ephemeral port with its index
// in a temporary directory, then:
//   1. the empty page says "Enter words describing characters." and has no rows;
//   2. typing "cat face" in the search box and submitting gives 10 rows and the status
//      "10 matches for 'cat face'";
//   3. "cjk" (98,000+ matches) gives exactly 200 rows and a visible #more; scrolling to the bottom
//      makes the page's script fetch more rows from /api/search (600 or more, all distinct and all
//      CJK) and keep #more's text in step with the table;
//   4. "<script>alert(1)</script> cat" is shown literally (search box, status, the table's
//      data-query) and adds no element: no dialog opens and the only script is /charfinder.js;
//   5. the server, sent SIGTERM once the browser has gone, exits with status 0.
// A dialog or an uncaught script error anywhere fails the test. Every wait is bounded (STEP_MS per
// step, TOTAL_MS for the whole run). Exit status 0 on success, 1 on failure with the failing step
// named, 2 on bad usage.
//
// playwright-core is pinned (package.json) to 1.61.1, the last release that runs on Node.js 18,
// which is Debian 12's nodejs; it drives Debian's Chromium and never downloads a browser of its own.
//
// Usage: node charfinder.mjs PATH/TO/aloop-charfinder
// Env: ALOOP_BACKEND (passed as --backend), CHROMIUM (the browser, default /usr/bin/chromium).
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { chromium } from 'playwright-core';

const STEP_MS = 15_000;
const TOTAL_MS = 90_000;
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const XSS = '<script>alert(1)</script> cat';

const binary = process.argv[2];
if (!binary || process.argv.length > 3) {
  process.stderr.write('usage: node charfinder.mjs PATH/TO/aloop-charfinder\n');
  process.exit(2);
}

const started = Date.now();
let currentStep = 'start';
let server = null;
let serverExit = null; // {code, signal} once the server has exited
let tmpDir = null;
const pageProblems = []; // dialogs and uncaught page errors, reported by the step that checks

function log(msg) {
  process.stdout.write(`charfinder.mjs: ${msg}\n`);
}

function fail(msg) {
  throw new Error(msg);
}

// Run one named step; its duration is logged, and a failure names it.
async function step(name, fn) {
  currentStep = name;
  const t0 = Date.now();
  try {
    await fn();
    if (pageProblems.length) fail(pageProblems.join('; '));
  } catch (e) {
    e.step ??= name; // the step that failed, not whichever cleanup runs after it
    // A dialog or a dead server explains the failure better than what it caused.
    const problems = pageProblems.join('; ');
    if (problems && !e.message.startsWith(problems)) e.message = `${problems}; then: ${e.message}`;
    throw e;
  }
  log(`ok - ${name} (${Date.now() - t0} ms)`);
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

// Poll probe() until check(value) holds; on timeout fail with what was last seen.
async function until(what, probe, check, ms = STEP_MS) {
  const deadline = Date.now() + ms;
  let last;
  for (;;) {
    last = await probe();
    if (check(last)) return last;
    if (Date.now() >= deadline) fail(`timed out after ${ms} ms waiting for ${what}; last saw ${JSON.stringify(last)}`);
    await sleep(100);
  }
}

// Start the server and resolve with its port, parsed from the "HTTP on HOST:PORT" line.
function startServer() {
  tmpDir = fs.mkdtempSync(path.join(os.tmpdir(), 'aloop-browser-'));
  const args = ['--http', '127.0.0.1:0', '--quiet'];
  if (process.env.ALOOP_BACKEND) args.push('--backend', process.env.ALOOP_BACKEND);
  const env = { ...process.env, ALOOP_CHARFINDER_INDEX: path.join(tmpDir, 'charfinder.index') };
  server = spawn(binary, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  return new Promise((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new Error(`no "HTTP on" line within ${STEP_MS} ms; stdout: ${JSON.stringify(out)}, stderr: ${JSON.stringify(err)}`)),
      STEP_MS,
    );
    server.on('error', (e) => {
      clearTimeout(timer);
      reject(new Error(`cannot start ${binary}: ${e.message}`));
    });
    server.on('exit', (code, signal) => {
      serverExit = { code, signal };
      clearTimeout(timer);
      reject(new Error(`the server exited (status ${code}, signal ${signal}) before serving; stderr: ${JSON.stringify(err)}`));
    });
    // Both streams are logged line by line, so that a failure's log shows what the server said.
    const lines = (stream, name, each) => {
      let partial = '';
      stream.setEncoding('utf8');
      stream.on('data', (d) => {
        const got = (partial + d).split('\n');
        partial = got.pop();
        for (const line of got) {
          log(`server ${name}: ${line}`);
          each(line);
        }
      });
    };
    lines(server.stderr, 'stderr', (line) => {
      err += line + '\n';
    });
    lines(server.stdout, 'stdout', (line) => {
      out += line + '\n';
      const m = /^aloop-charfinder: HTTP on \S*:(\d+)$/.exec(line);
      if (m) {
        clearTimeout(timer);
        resolve(Number(m[1]));
      }
    });
  });
}

// SIGTERM, then SIGKILL if it has not gone within a few seconds; resolves with how it ended.
async function stopServer() {
  if (!server || serverExit) return serverExit;
  const exited = new Promise((resolve) => server.once('exit', (code, signal) => resolve({ code, signal })));
  server.kill('SIGTERM');
  const how = await Promise.race([exited, sleep(5_000).then(() => null)]);
  if (how) return how;
  server.kill('SIGKILL');
  await Promise.race([exited, sleep(2_000)]);
  return { code: null, signal: 'SIGKILL (did not stop on SIGTERM within 5 s)' };
}

// A snapshot of the results page, taken in one go so that the parts agree with each other.
function snapshot(page) {
  return page.evaluate(() => {
    const table = document.getElementById('results');
    const more = document.getElementById('more');
    const box = document.querySelector('input[type="search"][name="query"]');
    const rows = table ? [...table.rows] : [];
    return {
      status: document.getElementById('status')?.textContent ?? null,
      box: box ? box.value : null,
      rows: rows.length,
      more: more ? more.textContent : null,
      count: table ? table.dataset.count : null,
      query: table ? table.dataset.query : null,
    };
  });
}

// Type words into the search box and press the find button, as a user would.
async function search(page, words) {
  const box = page.locator('input[type="search"][name="query"]');
  await box.fill(words);
  await Promise.all([
    page.waitForURL((url) => url.searchParams.get('query') === words, { timeout: STEP_MS }),
    page.locator('input[type="submit"][value="find"]').click(),
  ]);
  await page.waitForLoadState('load', { timeout: STEP_MS });
}

async function run() {
  let port;
  await step('start the server', async () => {
    port = await startServer();
    // From here on an exit of its own is a crash: note it for the step that is running.
    server.on('exit', (code, signal) => {
      serverExit = { code, signal };
      pageProblems.push(`the server exited during the test (status ${code}, signal ${signal})`);
    });
  });

  let browser;
  let page;
  try {
    await step('launch Chromium', async () => {
      browser = await chromium.launch({
        executablePath: CHROMIUM,
        args: ['--no-sandbox'],
        timeout: STEP_MS,
      });
      log(`browser: Chromium ${browser.version()}`);
      page = await browser.newPage();
    });
    page.setDefaultTimeout(STEP_MS);
    page.setDefaultNavigationTimeout(STEP_MS);
    page.on('dialog', (d) => {
      pageProblems.push(`a dialog (${d.type()}) opened: ${JSON.stringify(d.message())}`);
      d.dismiss().catch(() => {});
    });
    page.on('pageerror', (e) => pageProblems.push(`uncaught error in the page: ${e.message}`));
    const base = `http://127.0.0.1:${port}`;

    await step('open /', async () => {
      const res = await page.goto(`${base}/`);
      if (!res || res.status() !== 200) fail(`GET / answered ${res ? res.status() : 'nothing'}`);
      const s = await snapshot(page);
      if (s.status !== 'Enter words describing characters.') fail(`status is ${JSON.stringify(s.status)}`);
      if (s.rows !== 0) fail(`${s.rows} rows on the empty page`);
      if (s.more !== null) fail('#more is on the empty page');
    });

    await step("search 'cat face'", async () => {
      await search(page, 'cat face');
      const s = await until('10 rows', () => snapshot(page), (v) => v.rows === 10);
      if (s.status !== "10 matches for 'cat face'") fail(`status is ${JSON.stringify(s.status)}`);
      if (s.box !== 'cat face') fail(`the search box holds ${JSON.stringify(s.box)}`);
      if (s.more !== null) fail('#more is shown for 10 results');
      const names = await page.locator('#results tr td:nth-child(3)').allTextContents();
      const odd = names.filter((n) => !(n.includes('CAT') && n.includes('FACE')));
      if (odd.length) fail(`rows that are not cat faces: ${JSON.stringify(odd)}`);
    });

    let total;
    await step("search 'cjk': the first 200 rows", async () => {
      await search(page, 'cjk');
      const s = await snapshot(page);
      if (s.rows !== 200) fail(`${s.rows} rows at first, expected 200`);
      total = Number(s.count);
      if (!(total >= 98_000)) fail(`data-count is ${JSON.stringify(s.count)}, expected 98000 or more`);
      if (s.status !== `${total} matches for 'cjk'`) fail(`status is ${JSON.stringify(s.status)}`);
      if (s.more !== `200 of ${total} shown; scroll for more.`) fail(`#more says ${JSON.stringify(s.more)}`);
      if (!(await page.locator('#more').isVisible())) fail('#more is not visible');
    });

    await step("search 'cjk': scrolling loads more rows", async () => {
      const deadline = Date.now() + STEP_MS;
      let s = await snapshot(page);
      // Each scroll to the bottom brings #more into view, and the page fetches 200 more rows.
      for (let i = 0; i < 40 && s.rows < 600; i++) {
        if (Date.now() >= deadline) fail(`timed out after ${STEP_MS} ms with ${s.rows} rows`);
        const before = s.rows;
        await page.evaluate(() => window.scrollTo(0, document.documentElement.scrollHeight));
        s = await until(
          `more than ${before} rows`,
          () => snapshot(page),
          (v) => v.rows > before,
          Math.max(1, Math.min(5_000, deadline - Date.now())),
        );
      }
      if (s.rows < 600) fail(`only ${s.rows} rows after scrolling`);
      // The text of #more is updated together with the rows: wait out a fetch that is under way.
      s = await until(
        "#more's text to agree with the table",
        () => snapshot(page),
        (v) => v.more === `${v.rows} of ${total} shown; scroll for more.`,
        5_000,
      );
      const check = await page.evaluate(() => {
        const rows = [...document.getElementById('results').rows];
        const codes = new Set(rows.map((r) => r.cells[0].textContent));
        const bad = rows.filter(
          (r) => r.cells.length !== 3 || !/^U\+[0-9A-F]{4,6}$/.test(r.cells[0].textContent) ||
            r.cells[1].tagName !== 'TH' || !r.cells[1].textContent || !/\bCJK\b/.test(r.cells[2].textContent),
        );
        return { distinct: codes.size, rows: rows.length, bad: bad.slice(0, 3).map((r) => r.textContent) };
      });
      if (check.distinct !== check.rows) fail(`${check.rows} rows but only ${check.distinct} distinct code points`);
      if (check.bad.length) fail(`malformed or non-CJK rows, e.g. ${JSON.stringify(check.bad)}`);
      log(`  ${s.rows} rows after scrolling; #more says ${JSON.stringify(s.more)}`);
    });

    await step(`search ${JSON.stringify(XSS)}: shown literally, nothing injected`, async () => {
      await search(page, XSS);
      await sleep(300); // room for a late dialog, which would be reported below
      const s = await snapshot(page);
      if (s.box !== XSS) fail(`the search box holds ${JSON.stringify(s.box)}`);
      if (s.status === null || !s.status.includes('<script>') || !s.status.includes(XSS))
        fail(`the status ${JSON.stringify(s.status)} does not show the query literally`);
      if (s.query !== XSS) fail(`the table's data-query is ${JSON.stringify(s.query)}`);
      const dom = await page.evaluate(() => ({
        scripts: [...document.scripts].map((e) => e.getAttribute('src')),
        statusChildren: document.getElementById('status').childElementCount,
        body: [...document.body.children].map((e) => e.tagName.toLowerCase() + (e.id ? '#' + e.id : '')),
        forms: document.forms.length,
        inputs: document.querySelectorAll('input').length,
      }));
      if (dom.scripts.length !== 1 || dom.scripts[0] !== '/charfinder.js')
        fail(`scripts in the page: ${JSON.stringify(dom.scripts)}`);
      if (dom.statusChildren !== 0) fail(`the status has ${dom.statusChildren} child elements`);
      const expected = ['form', 'p#status', 'hr', 'table#results', ...(s.more === null ? [] : ['p#more']), 'script'];
      if (JSON.stringify(dom.body) !== JSON.stringify(expected))
        fail(`the body holds ${JSON.stringify(dom.body)}, expected ${JSON.stringify(expected)}`);
      if (dom.forms !== 1 || dom.inputs !== 2) fail(`${dom.forms} forms and ${dom.inputs} inputs in the page`);
    });
  } finally {
    currentStep = 'close the browser';
    if (browser) await Promise.race([browser.close().catch(() => {}), sleep(5_000)]);
  }

  currentStep = 'stop the server';
  const how = await stopServer();
  if (how && how.code !== 0) fail(`the server ended with status ${how.code}, signal ${how.signal} on SIGTERM`);
  log(`ok - stop the server`);
}

function cleanup() {
  if (server && !serverExit) server.kill('SIGKILL');
  if (tmpDir) fs.rmSync(tmpDir, { recursive: true, force: true });
}

// The whole run is bounded too: a hang anywhere ends it, naming the step.
const watchdog = setTimeout(() => {
  process.stderr.write(`charfinder.mjs: FAIL: the test took over ${TOTAL_MS / 1000} s; stuck in step: ${currentStep}\n`);
  cleanup();
  process.exit(1);
}, TOTAL_MS);

let status = 0;
try {
  await run();
  log(`PASS (${((Date.now() - started) / 1000).toFixed(1)} s)`);
} catch (e) {
  process.stderr.write(`charfinder.mjs: FAIL in step "${e.step ?? currentStep}": ${e.message}\n`);
  status = 1;
  await stopServer().catch(() => {});
} finally {
  clearTimeout(watchdog);
  cleanup();
}
process.exit(status);
