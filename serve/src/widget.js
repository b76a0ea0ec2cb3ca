// The botc chat widget: a chat button for any site's pages, talking to a botc server across
// origins. A site includes
//   <script src="https://bots.example.com/widget.js" data-bot="pizza_order" async></script>
// and lists its own origin under [web] allowed_origins in the server's botc.toml (docs/widget.md).
// Optional: data-title="Luigi's Pizzeria", data-open="true" (start opened).
// Everything lives in a shadow root, so the site's styles and the widget's do not mix.
(() => {
  const script = document.currentScript;
  if (!script) return;
  const base = new URL(script.src).origin;
  const bot = script.dataset.bot;
  if (!bot) { console.error('botc widget: add data-bot="BOT_ID" to its script tag'); return; }
  const slot = `botc-widget:${base}:${bot}`;
  const host = document.createElement('div');
  host.id = 'botc-widget';
  const root = host.attachShadow({ mode: 'open' });
  root.innerHTML = `<style>
    :host { all: initial; }
    * { box-sizing: border-box; font-family: system-ui, sans-serif; }
    .launcher { position: fixed; right: 20px; bottom: 20px; z-index: 2147483000; width: 56px; height: 56px; border-radius: 50%;
      border: 0; background: #2d6cdf; color: #fff; font-size: 26px; cursor: pointer; box-shadow: 0 4px 14px rgba(0,0,0,.25); }
    .panel { position: fixed; right: 20px; bottom: 88px; z-index: 2147483000; width: min(380px, calc(100vw - 24px));
      height: min(560px, calc(100vh - 110px)); display: flex; flex-direction: column; background: #fff; color: #222;
      border-radius: 12px; box-shadow: 0 8px 30px rgba(0,0,0,.25); overflow: hidden; }
    .panel[hidden] { display: none; }
    header { display: flex; align-items: center; gap: .5rem; padding: .7rem 1rem; background: #2d6cdf; color: #fff; }
    header strong { flex: 1; font-size: 1rem; }
    header button { background: transparent; border: 0; color: #fff; cursor: pointer; font-size: .85rem; }
    .log { flex: 1; overflow-y: auto; padding: .8rem; font-size: .95rem; }
    .row { display: flex; flex-direction: column; margin: .3rem 0; }
    .row.user { align-items: flex-end; }
    .msg { max-width: 85%; padding: .45rem .75rem; border-radius: .8rem; white-space: pre-wrap; overflow-wrap: anywhere; }
    .bot .msg { background: #eef1f6; }
    .user .msg { background: #2d6cdf; color: #fff; }
    .system .msg { color: #666; font-style: italic; }
    .buttons { display: flex; flex-wrap: wrap; gap: .3rem; margin-top: .3rem; }
    .buttons button { padding: .3rem .75rem; border-radius: 1rem; border: 1px solid #2d6cdf; background: #fff; color: #2d6cdf; cursor: pointer; font-size: .9rem; }
    .buttons button:disabled { border-color: #ccc; color: #999; cursor: default; }
    form { display: flex; gap: .4rem; padding: .5rem; border-top: 1px solid #ddd; }
    input { flex: 1; min-width: 0; padding: .55rem; font-size: 1rem; border: 1px solid #ccc; border-radius: .4rem; }
    form button { padding: .5rem .9rem; border: 0; border-radius: .4rem; background: #2d6cdf; color: #fff; cursor: pointer; }
    @media (max-width: 480px) { .panel { right: 0; bottom: 0; width: 100vw; height: 100vh; border-radius: 0; } }
  </style>
  <button class="launcher" aria-label="Chat with us" aria-expanded="false">💬</button>
  <section class="panel" role="dialog" aria-label="chat" hidden>
    <header><strong></strong><button class="restart">New conversation</button><button class="close" aria-label="Close">✕</button></header>
    <div class="log" aria-live="polite"></div>
    <form><input aria-label="message" placeholder="Write a message…" autocomplete="off"><button>Send</button></form>
  </section>`;
  const $ = sel => root.querySelector(sel);
  const log = $('.log'), panel = $('.panel'), launcher = $('.launcher');
  let conversation = null, token = null, after = 0, polling = 0, pressed = new Map();

  async function api(path, body) {
    const headers = token ? { authorization: 'Bearer ' + token } : {};
    const init = body === undefined ? { headers }
      : { method: 'POST', headers: { ...headers, 'content-type': 'application/json' }, body: JSON.stringify(body) };
    // A server that does not list this site answers without CORS headers, which the browser
    // reports only as a failed fetch: say what may be wrong.
    const r = await fetch(base + path, init).catch(() => {
      throw new Error(`${base} cannot be reached, or does not allow this site's pages ` +
        `(its operator lists them under [web] allowed_origins)`);
    });
    if (!r.ok) {
      const e = await r.json().catch(() => ({ error: r.statusText || 'the chat server refused this site' }));
      throw Object.assign(new Error(e.error), { status: r.status });
    }
    return r.status === 202 ? null : r.json();
  }
  function show(m) {
    log.querySelectorAll('.buttons button[data-value]').forEach(b => { b.disabled = true; });
    const row = document.createElement('div');
    row.className = 'row ' + m.from;
    const bubble = document.createElement('div');
    bubble.className = 'msg';
    bubble.textContent = m.from === 'user' && pressed.has(m.text) ? pressed.get(m.text) : m.text;
    row.appendChild(bubble);
    if (m.from === 'bot' && m.buttons && m.buttons.length) {
      pressed = new Map();
      const buttons = document.createElement('div');
      buttons.className = 'buttons';
      for (const b of m.buttons) {
        const btn = document.createElement('button');
        btn.textContent = b.label;
        if (b.url) btn.onclick = () => window.open(b.url, '_blank', 'noopener');
        else {
          pressed.set(b.value, b.label);
          btn.dataset.value = b.value;
          btn.onclick = () => send({ button: b.value });
        }
        buttons.appendChild(btn);
      }
      row.appendChild(buttons);
    }
    log.appendChild(row);
    log.scrollTop = log.scrollHeight;
  }
  async function poll(id) {
    while (id === polling) {
      try {
        const r = await api(`/api/bots/${bot}/conversations/${conversation}/messages?after=${after}&wait=25`);
        if (id !== polling) return;
        for (const m of r.messages) { after = m.seq; show(m); }
      } catch (e) {
        if (e.status === 401 && id === polling) { start(true); return; }
        await new Promise(r => setTimeout(r, e.status === 429 ? 2000 : 1000));
      }
    }
  }
  async function send(body) {
    try { await api(`/api/bots/${bot}/conversations/${conversation}/messages`, body); }
    catch (e) { show({ from: 'system', text: 'Could not send: ' + e.message }); }
  }
  // The conversation is kept in this site's storage, so it continues across pages and visits.
  async function start(fresh) {
    polling += 1; after = 0;
    const mine = polling;
    let saved = null;
    try { saved = fresh ? null : JSON.parse(localStorage.getItem(slot)); } catch (e) { saved = null; }
    log.innerHTML = '';
    if (saved && saved.conversation && saved.token) ({ conversation, token } = saved);
    else {
      token = null;
      try { ({ conversation, token } = await api(`/api/bots/${bot}/conversations`, {})); }
      catch (e) { show({ from: 'system', text: 'The chat is not available: ' + e.message }); return; }
      localStorage.setItem(slot, JSON.stringify({ conversation, token }));
    }
    if (mine !== polling) return;
    poll(mine);
    if (!saved) send({ text: 'hi' });
  }
  function toggle(open) {
    panel.hidden = !open;
    launcher.setAttribute('aria-expanded', String(open));
    launcher.textContent = open ? '✕' : '💬';
    if (open && conversation === null) start(false);
    if (open) $('input').focus();
  }
  launcher.onclick = () => toggle(panel.hidden);
  $('.close').onclick = () => toggle(false);
  $('.restart').onclick = () => start(true);
  $('form').onsubmit = e => {
    e.preventDefault();
    const input = $('input');
    if (input.value.trim()) send({ text: input.value });
    input.value = '';
  };
  $('header strong').textContent = script.dataset.title || 'Chat';
  if (!script.dataset.title) {
    api('/api/bots').then(r => {
      const b = r.bots.find(b => b.id === bot);
      if (b) $('header strong').textContent = b.name;
    }).catch(() => {});
  }
  const mount = () => { document.body.appendChild(host); if (script.dataset.open === 'true') toggle(true); };
  if (document.body) mount(); else document.addEventListener('DOMContentLoaded', mount);
})();
