// The overlay page: alerts one at a time, and the chat, from /events (SSE).
//
// Safety rules (docs/overlay.md): every text that comes from VK (nicks,
// messages, reward names) goes into the page through textContent or a text
// node, never through innerHTML; image URLs are used only when `new URL()`
// reads them as http: or https:; colours only when they are #RRGGBB. The
// server's Content-Security-Policy forbids inline scripts anyway.
'use strict';

(() => {
  // Texts shown on the alerts; translate here.
  const LABELS = {
    follow: () => 'New follower',
    follows: (count) => `${count} new followers`,
    more: (count) => ` and ${count} more`,
    raid: (viewers) => viewers == null ? 'Raid!'
      : `Raid with ${viewers} viewer${viewers === 1 ? '' : 's'}`,
    subscription: (level) => level ? `New subscriber · ${level}` : 'New subscriber',
    redemption: (reward, cost) => {
      const name = reward || 'Reward redeemed';
      return cost == null ? name : `${name} · ${cost} pts`;
    },
  };

  // Page options, from the query string: /?alert_ms=6000&chat_max=15
  const params = new URLSearchParams(location.search);
  const option = (name, fallback, min, max) => {
    const value = Number.parseInt(params.get(name) ?? '', 10);
    return Number.isFinite(value) ? Math.min(max, Math.max(min, value)) : fallback;
  };
  const ALERT_MS = option('alert_ms', 5000, 500, 60000); // on screen, animations included
  const CHAT_MAX = option('chat_max', 20, 1, 200);       // messages kept in the chat box
  const REPLAY = option('replay', 0, 0, 1000);           // a fresh page starts this many events back
  const IN_MS = 400;   // the alert-in animation in overlay.css
  const OUT_MS = 300;  // the alert-out animation in overlay.css
  const STORE = 'vklive-overlay:resume';
  // A follow-bot flood must not queue hours of alerts: from FOLLOW_FLOOD
  // follows waiting on, they become one "N new followers" alert; and the
  // queue never holds more than MAX_QUEUE alerts (the oldest waiting one
  // goes first, counted in the console).
  const FOLLOW_FLOOD = 5;
  const MAX_QUEUE = 50;
  const NICKS_SHOWN = 3; // nicks named on a followers alert

  const alertsBox = document.getElementById('alerts');
  const chatBox = document.getElementById('chat');

  // ----- safe building blocks ------------------------------------------------

  function safeUrl(value) {
    if (typeof value !== 'string' || value === '') return null;
    try {
      const url = new URL(value);
      return url.protocol === 'https:' || url.protocol === 'http:' ? url.href : null;
    } catch {
      return null;
    }
  }

  function safeColor(value) {
    return typeof value === 'string' && /^#[0-9a-fA-F]{6}$/.test(value) ? value : null;
  }

  function text(value) {
    return typeof value === 'string' ? value : value == null ? '' : String(value);
  }

  function element(tag, className, content) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (content != null) node.textContent = text(content);
    return node;
  }

  // An <img> for an http(s) URL, or null. A picture that fails to load is
  // replaced by its alt text (or just removed).
  function image(url, className, alt) {
    const src = safeUrl(url);
    if (!src) return null;
    const img = element('img', className);
    img.alt = alt;
    img.referrerPolicy = 'no-referrer';
    img.decoding = 'async';
    img.addEventListener('error', () => {
      if (alt) img.replaceWith(element('span', className + '-text', alt));
      else img.remove();
    }, { once: true });
    img.src = src;
    return img;
  }

  function nick(user) {
    const node = element('span', 'nick', user && user.nick);
    const color = safeColor(user && user.color);
    if (color) node.style.color = color; // CSSOM, allowed by style-src 'self'
    return node;
  }

  // ----- chat ----------------------------------------------------------------

  function showChat(item) {
    const line = element('li', 'msg');
    line.dataset.id = text(item.id);
    const avatar = image(item.user && item.user.avatar, 'avatar', '');
    if (avatar) line.append(avatar);
    line.append(nick(item.user), element('span', 'sep', ': '));
    const body = element('span', 'text');
    for (const part of Array.isArray(item.parts) ? item.parts : []) {
      if (part === null || typeof part !== 'object') continue;
      if ('text' in part) {
        body.append(document.createTextNode(text(part.text)));
      } else if ('mention' in part) {
        body.append(element('span', 'mention', '@' + text(part.mention)));
      } else if ('smile' in part && part.smile && typeof part.smile === 'object') {
        const alt = ':' + text(part.smile.name) + ':';
        body.append(image(part.smile.url, 'smile', alt) || element('span', 'smile-text', alt));
      } else if ('link' in part && part.link && typeof part.link === 'object') {
        body.append(element('span', 'link', part.link.text || part.link.url));
      }
    }
    line.append(body);
    chatBox.append(line);
    while (chatBox.children.length > CHAT_MAX) chatBox.firstElementChild.remove();
  }

  function deleteChat(item) {
    const id = text(item.id);
    for (const line of chatBox.querySelectorAll('li.msg')) {
      if (line.dataset.id === id) line.remove();
    }
  }

  // ----- alerts: one at a time -----------------------------------------------

  const queue = [];     // [{id, item}] received, not shown yet
  let showing = false;
  let dropped = 0;      // alerts dropped past MAX_QUEUE, since the page loaded

  // Queues an alert: follows beyond the flood mark join one followers
  // alert (kept at the place of the first follow waiting, with its id).
  function enqueue(id, item) {
    if (item.kind === 'follow') {
      const group = queue.find((entry) => entry.item.kind === 'follows');
      if (group) {
        addFollower(group.item, item.user);
        return;
      }
      const follows = queue.filter((entry) => entry.item.kind === 'follow');
      if (follows.length + 1 >= FOLLOW_FLOOD) {
        const merged = { kind: 'follows', count: 0, users: [] };
        for (const entry of follows) addFollower(merged, entry.item.user);
        addFollower(merged, item.user);
        const first = queue.indexOf(follows[0]);
        const rest = queue.filter((entry) => entry.item.kind !== 'follow');
        queue.length = 0;
        queue.push(...rest);
        queue.splice(Math.min(first, queue.length), 0, { id: follows[0].id, item: merged });
        return;
      }
    }
    queue.push({ id, item });
    while (queue.length > MAX_QUEUE) {
      queue.shift();
      dropped += 1;
      console.warn('overlay: alert queue full, dropped', dropped, 'alerts so far');
    }
  }

  function addFollower(group, user) {
    group.count += 1;
    if (group.users.length < NICKS_SHOWN) group.users.push(user);
  }

  function alertCard(item) {
    const card = element('section', 'alert alert-' + item.kind);
    let title = '';
    let detail = null;
    switch (item.kind) {
      case 'follow':
        title = LABELS.follow();
        break;
      case 'follows': {
        card.classList.add('alert-follow');
        card.append(element('h1', 'alert-title', LABELS.follows(item.count)));
        const who = element('p', 'alert-user');
        item.users.forEach((user, index) => {
          if (index > 0) who.append(document.createTextNode(', '));
          who.append(nick(user));
        });
        if (item.count > item.users.length) {
          who.append(document.createTextNode(LABELS.more(item.count - item.users.length)));
        }
        card.append(who);
        return card;
      }
      case 'raid':
        title = LABELS.raid(typeof item.viewers === 'number' ? item.viewers : null);
        break;
      case 'subscription':
        title = LABELS.subscription(text(item.level));
        break;
      case 'redemption':
        title = LABELS.redemption(text(item.reward), typeof item.cost === 'number' ? item.cost : null);
        if (item.message) detail = element('p', 'alert-message', item.message);
        break;
    }
    card.append(element('h1', 'alert-title', title));
    const who = element('p', 'alert-user');
    who.append(nick(item.user));
    card.append(who);
    if (detail) card.append(detail);
    return card;
  }

  function pump() {
    if (showing || queue.length === 0) return;
    const { id, item } = queue.shift();
    document.body.dataset.queued = String(queue.length);
    showing = true;
    saveResume();
    const card = alertCard(item);
    card.dataset.eventId = id;
    card.dataset.phase = 'in';
    alertsBox.replaceChildren(card);
    setTimeout(() => { card.dataset.phase = 'shown'; }, IN_MS);
    setTimeout(() => { card.dataset.phase = 'out'; }, Math.max(IN_MS, ALERT_MS - OUT_MS));
    setTimeout(() => {
      card.remove();
      showing = false;
      pump();
    }, ALERT_MS);
  }

  // ----- the feed --------------------------------------------------------------

  // The position to resume from after a reload: just before the first alert
  // not shown yet, or else the last event received. Ids are `<boot>-<seq>`.
  let lastId = sessionStorage.getItem(STORE) || '';

  function before(id) {
    const dash = id.lastIndexOf('-');
    const seq = Number.parseInt(id.slice(dash + 1), 10);
    return dash > 0 && seq > 0 ? id.slice(0, dash + 1) + (seq - 1) : id;
  }

  function saveResume() {
    const resume = queue.length > 0 ? before(queue[0].id) : lastId;
    try {
      if (resume) sessionStorage.setItem(STORE, resume);
    } catch {
      // storage full or disabled: a reload then starts from the live edge
    }
  }

  function handle(id, item) {
    switch (item.kind) {
      case 'chat': showChat(item); break;
      case 'delete': deleteChat(item); break;
      case 'follow':
      case 'raid':
      case 'subscription':
      case 'redemption':
        enqueue(id, item);
        document.body.dataset.queued = String(queue.length);
        break;
      default: break; // a kind this page does not know
    }
  }

  function connect() {
    const url = lastId ? 'events?since=' + encodeURIComponent(lastId)
      : REPLAY > 0 ? 'events?last=' + REPLAY : 'events';
    const source = new EventSource(url);
    source.addEventListener('hello', (event) => {
      document.body.dataset.state = 'live';
      if (event.lastEventId) lastId = event.lastEventId;
      saveResume();
    });
    source.addEventListener('gap', (event) => {
      console.warn('overlay: events missed while away', event.data);
    });
    source.addEventListener('message', (event) => {
      let item = null;
      try {
        item = JSON.parse(event.data);
      } catch {
        return;
      }
      if (event.lastEventId) lastId = event.lastEventId;
      if (item && typeof item === 'object') handle(lastId, item);
      saveResume();
      pump();
    });
    source.addEventListener('error', () => {
      document.body.dataset.state = 'reconnecting';
      // The browser retries by itself (sending Last-Event-ID) unless the
      // server answered with an error; then start over from where we are.
      if (source.readyState === EventSource.CLOSED) {
        source.close();
        setTimeout(connect, 2000);
      }
    });
  }

  connect();
})();
