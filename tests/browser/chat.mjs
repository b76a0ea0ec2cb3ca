// Chats with the pizza bot through the botc web page in headless Chromium, as a person
// would: pick the bot, press buttons, type. Usage: node chat.mjs http://127.0.0.1:PORT/
// Exits 0 when every expectation holds; prints what it saw otherwise.
import { chromium } from 'playwright-core';
import fs from 'node:fs';

const url = process.argv[2];
if (!url) {
  console.error('usage: node chat.mjs URL');
  process.exit(2);
}
const executablePath = process.env.BOTC_CHROMIUM || '/usr/bin/chromium';
const browser = await chromium.launch({
  executablePath,
  headless: true,
  // The machine's network is closed: keep Chromium from reaching out on its own.
  args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
    '--disable-component-update', '--disable-sync'],
});
// Screenshots for a person to look at (desktop and phone).
const shots = process.env.BOTC_SCREENSHOTS || 'target/browser';
fs.mkdirSync(shots, { recursive: true });
let failed = false;
try {
  const page = await browser.newPage();
  const external = [];
  page.on('request', r => { if (!r.url().startsWith(url)) external.push(r.url()); });
  await page.goto(url);
  const visible = async sel => page.locator(sel).isVisible();
  // Before a bot is picked only the list shows.
  await page.getByRole('button', { name: 'pizza order' }).waitFor({ timeout: 10000 });
  for (const sel of ['#bar', '#form']) if (await visible(sel)) throw new Error(`${sel} shows before a bot is picked`);
  await page.getByRole('button', { name: 'pizza order' }).click();
  // The page starts the conversation; the bot greets and asks for a size with buttons.
  await page.getByText('First things first: what size would you like?').waitFor({ timeout: 10000 });
  if ((await page.locator('#title').textContent()) !== 'pizza order') throw new Error('the header does not name the bot');
  if (await page.locator('.row time').count() < 1) throw new Error('messages have no time');
  await page.getByRole('button', { name: /Large \(35 cm\)/ }).click();
  await page.getByText('A large it is! Which crust?').waitFor({ timeout: 10000 });
  // The pressed button's label is the user's message; the earlier buttons are spent.
  const mine = await page.locator('.row.user .msg').allTextContents();
  if (!mine.some(t => /Large \(35 cm\)/.test(t))) throw new Error('the user bubble shows ' + JSON.stringify(mine));
  const small = page.getByRole('button', { name: /^Small/ });
  if (!(await small.isDisabled())) throw new Error("an earlier message's buttons can still be pressed");
  await page.getByRole('button', { name: 'thin' }).click();
  await page.getByText(/Add a topping/).first().waitFor({ timeout: 10000 });
  // Typing works as well as buttons.
  await page.getByRole('textbox', { name: 'message' }).fill('olives');
  await page.getByRole('button', { name: 'Send' }).click();
  await page.getByText(/You have 1 so far/).waitFor({ timeout: 10000 });
  // The flow view shows the node this conversation waits at.
  await page.getByRole('button', { name: 'Show flow' }).click();
  const here = page.locator('#graph g.node.here');
  await here.waitFor({ timeout: 10000 });
  const node = await here.getAttribute('data-node');
  if (node !== 'ask_topping') throw new Error(`the flow view highlights ${node}, not ask_topping`);
  const nodes = await page.locator('#graph g.node').count();
  if (nodes < 20) throw new Error(`the flow view draws ${nodes} nodes`);
  // Nodes say what they are and edges why they are taken; the waiting node is in view.
  for (const kind of ['ask', 'say', 'branch', 'http']) {
    if (await page.locator(`#graph g.node.kind-${kind}`).count() < 1) throw new Error(`no ${kind} node in the flow view`);
  }
  const labels = await page.locator('#graph .edge-label').allTextContents();
  for (const want of ['when', 'else', 'on_error']) {
    if (!labels.some(l => l.includes(want))) throw new Error(`no \`${want}\` edge label in ${JSON.stringify(labels)}`);
  }
  const inside = (a, b) => a.x >= b.x - 1 && a.y >= b.y - 1 && a.x + a.width <= b.x + b.width + 1 && a.y + a.height <= b.y + b.height + 1;
  const area = await page.locator('#svg').boundingBox();
  if (!inside(await here.boundingBox(), area)) throw new Error('the node this conversation waits at is off screen');
  await page.screenshot({ path: `${shots}/desktop.png` });
  // Zoom out shows more of the flow: the node gets smaller.
  const before = (await here.boundingBox()).width;
  await page.getByRole('button', { name: 'zoom out' }).click();
  const after = (await here.boundingBox()).width;
  if (!(after < before)) throw new Error(`zooming out did not shrink the nodes (${before} -> ${after})`);
  // The page's layout library is the pinned dagre release, unchanged.
  const vendored = fs.readFileSync('serve/src/assets/dagre.min.js');
  const pinned = fs.readFileSync('tests/browser/node_modules/@dagrejs/dagre/dist/dagre.min.js');
  if (!vendored.equals(pinned)) throw new Error('serve/src/assets/dagre.min.js differs from the pinned @dagrejs/dagre');
  // Reloading the page continues the same conversation, bot and flow view, by itself.
  const conv = await page.locator('#conv').textContent();
  await page.reload();
  await page.getByText(/You have 1 so far/).waitFor({ timeout: 10000 });
  if (await page.locator('#conv').textContent() !== conv) throw new Error('a reload started a new conversation');
  await page.locator('#graph g.node.here').waitFor({ timeout: 10000 });
  // A phone: the chat fits 390 px, nothing scrolls sideways, the message box is there.
  await page.getByRole('button', { name: 'Hide flow' }).click();
  await page.setViewportSize({ width: 390, height: 844 });
  await page.getByText(/You have 1 so far/).waitFor({ timeout: 10000 });
  const wide = await page.evaluate(() => document.documentElement.scrollWidth);
  if (wide > 390) throw new Error(`at 390 px wide the page is ${wide} px wide`);
  const box = await page.getByRole('textbox', { name: 'message' }).boundingBox();
  if (!box || box.y + box.height > 844) throw new Error(`the message box is not on the screen at 390 px: ${JSON.stringify(box)}`);
  await page.screenshot({ path: `${shots}/phone.png` });
  console.log(`screenshots: ${shots}/desktop.png, ${shots}/phone.png`);
  if (external.length) throw new Error('the page loaded outside resources: ' + external.join(', '));
  console.log('browser chat: ok');
} catch (e) {
  failed = true;
  console.error('browser chat failed: ' + e.message);
} finally {
  await browser.close();
}
process.exit(failed ? 1 : 0);
