// The chat widget on another site's page, in headless Chromium: a page served from another
// origin includes botc's widget.js and chats across origins, as [web] allowed_origins allows;
// a site that is not listed is refused and the widget says so.
// Usage: node widget.mjs BOTC_URL ALLOWED_PORT OTHER_PORT
import { chromium } from 'playwright-core';
import http from 'node:http';
import fs from 'node:fs';

const [botc, allowed, other] = process.argv.slice(2);
if (!other) {
  console.error('usage: node widget.mjs BOTC_URL ALLOWED_PORT OTHER_PORT');
  process.exit(2);
}
const shots = process.env.BOTC_SCREENSHOTS || 'target/browser';
fs.mkdirSync(shots, { recursive: true });
// A shop's page with the widget's script tag, as its docs say to include it.
const shop = `<!doctype html><html><head><meta charset="utf-8"><title>Luigi's</title></head>
<body><h1>Luigi's Pizzeria</h1><p>Order online!</p>
<script src="${botc}/widget.js" data-bot="pizza_order" async></script></body></html>`;
const serve = port => new Promise(ok => {
  const s = http.createServer((req, res) => { res.setHeader('content-type', 'text/html'); res.end(shop); });
  s.listen(Number(port), '127.0.0.1', () => ok(s));
});
const sites = [await serve(allowed), await serve(other)];
const browser = await chromium.launch({
  executablePath: process.env.BOTC_CHROMIUM || '/usr/bin/chromium',
  headless: true,
  args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
    '--disable-component-update', '--disable-sync'],
});
let failed = false;
try {
  const page = await browser.newPage();
  await page.goto(`http://127.0.0.1:${allowed}/`);
  await page.getByRole('button', { name: 'Chat with us' }).click();
  await page.getByText('First things first: what size would you like?').waitFor({ timeout: 10000 });
  if ((await page.locator('#botc-widget header strong').textContent()) !== 'pizza order') {
    throw new Error('the widget does not name the bot');
  }
  await page.getByRole('button', { name: /Large \(35 cm\)/ }).click();
  await page.getByText('A large it is! Which crust?').waitFor({ timeout: 10000 });
  await page.getByRole('textbox', { name: 'message' }).fill('thin');
  await page.getByRole('button', { name: 'Send' }).click();
  await page.getByText(/Add a topping/).first().waitFor({ timeout: 10000 });
  await page.screenshot({ path: `${shots}/widget.png` });
  // Another page of the site: the same conversation goes on.
  await page.reload();
  await page.getByRole('button', { name: 'Chat with us' }).click();
  await page.getByText('A large it is! Which crust?').waitFor({ timeout: 10000 });
  // A site that is not listed cannot use the chat, and the widget says why.
  const stranger = await browser.newPage();
  await stranger.goto(`http://127.0.0.1:${other}/`);
  await stranger.getByRole('button', { name: 'Chat with us' }).click();
  await stranger.getByText(/The chat is not available: .*allowed_origins/).waitFor({ timeout: 10000 });
  console.log(`widget: ok; screenshot: ${shots}/widget.png`);
} catch (e) {
  failed = true;
  console.error('widget failed: ' + e.message);
} finally {
  await browser.close();
  for (const s of sites) s.close();
}
process.exit(failed ? 1 : 0);
