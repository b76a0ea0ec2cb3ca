// Chats with the pizza bot through the botc web page in headless Chromium, as a person
// would: pick the bot, press buttons, type. Usage: node chat.mjs http://127.0.0.1:PORT/
// Exits 0 when every expectation holds; prints what it saw otherwise.
import { chromium } from 'playwright-core';

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
let failed = false;
try {
  const page = await browser.newPage();
  const external = [];
  page.on('request', r => { if (!r.url().startsWith(url)) external.push(r.url()); });
  await page.goto(url);
  await page.getByRole('button', { name: 'pizza order' }).click();
  // The page starts the conversation; the bot greets and asks for a size with buttons.
  await page.getByText('First things first: what size would you like?').waitFor({ timeout: 10000 });
  await page.getByRole('button', { name: /Large \(35 cm\)/ }).click();
  await page.getByText('A large it is! Which crust?').waitFor({ timeout: 10000 });
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
  // Reloading the page continues the same conversation.
  const conv = await page.locator('#conv').textContent();
  await page.reload();
  await page.getByRole('button', { name: 'pizza order' }).click();
  await page.getByText(/You have 1 so far/).waitFor({ timeout: 10000 });
  if (await page.locator('#conv').textContent() !== conv) throw new Error('a reload started a new conversation');
  if (external.length) throw new Error('the page loaded outside resources: ' + external.join(', '));
  console.log('browser chat: ok');
} catch (e) {
  failed = true;
  console.error('browser chat failed: ' + e.message);
} finally {
  await browser.close();
}
process.exit(failed ? 1 : 0);
