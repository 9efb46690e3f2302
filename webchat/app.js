/* Web Chat on the local Direct Line bridge, and beside it what the bot stored. */
'use strict';

// The user and the conversation survive reloads and restarts of `make chat`:
// the page asks the bridge to resume the conversation it was in, so user state
// (your name) and conversation state (your order) are both still yours.
const USER_ID_KEY = 'state-bot-user-id';
const CONVERSATION_ID_KEY = 'state-bot-conversation-id';
const userID = localStorage.getItem(USER_ID_KEY) || `web-user-${crypto.randomUUID().slice(0, 8)}`;
localStorage.setItem(USER_ID_KEY, userID);

// DirectLineJS's ConnectionStatus values.
const ONLINE = 2;
const FAILED_TO_CONNECT = 4;
const ENDED = 5;
// Web Chat's connectivityStatus values in which it posts what is sent.
const WEBCHAT_CONNECTED = ['connected', 'reconnected'];
const HEARTBEAT_MS = { connected: 1000, other: 400 };
const STYLE_OPTIONS = {
  hideUploadButton: true,
  botAvatarInitials: 'Bot',
  userAvatarInitials: 'You',
};
const CONNECTION_TEXT = {
  connecting: 'Connecting…',
  connected: 'Connected',
  reconnecting: 'Reconnecting…',
};

// One Web Chat store for the page's lifetime: a new Direct Line connection
// (after a restart) keeps the transcript already on screen.
const store = window.WebChat.createStore();
const connection = {
  directLine: null,
  activities: null, // our subscription to the current Direct Line's activities
  instance: null, // the bridge process the current Direct Line talks to
  lost: false, // the bridge stopped answering since that Direct Line was opened
  problem: 'asking the page’s server', // why the bridge or the bot cannot be used, or null
  everConnected: false,
  state: 'connecting',
};
// The channel comes from the bridge, the conversation from Direct Line: as the bot sees them.
const ids = { channel: null, conversation: null, user: userID };
const status = document.getElementById('state-status');
let refreshTimer;
let latestRefresh = 0;

/** Opens Direct Line to the stored conversation (or a new one) and hands it to Web Chat.
 * ``watermark``: where the previous connection had read up to on the same bridge;
 * none after a restart of the bridge, whose history starts again. */
function openDirectLine(watermark) {
  if (connection.activities) connection.activities.unsubscribe();
  const directLine = window.WebChat.createDirectLine({
    domain: `${window.location.origin}/directline`,
    token: 'local',
    conversationId: localStorage.getItem(CONVERSATION_ID_KEY) || undefined,
    watermark,
    webSocket: false,
    // The fastest Web Chat allows: a reply shows about 0.2 s after it is sent.
    pollingInterval: 200,
  });
  directLine.connectionStatus$.subscribe((value) => {
    if (value !== ONLINE || directLine !== connection.directLine) return;
    localStorage.setItem(CONVERSATION_ID_KEY, directLine.conversationId);
    ids.conversation = directLine.conversationId;
    scheduleRefresh();
  });
  connection.directLine = directLine;
  connection.activities = directLine.activity$.subscribe(() => scheduleRefresh());
  renderChat();
}

/** (Re)renders Web Chat with the current Direct Line and the page's one store;
 * the send box is off unless connected. */
function renderChat() {
  window.WebChat.renderWebChat(
    {
      directLine: connection.directLine,
      store,
      userID,
      username: 'You',
      disabled: connection.state !== 'connected',
      styleOptions: STYLE_OPTIONS,
    },
    document.getElementById('webchat'),
  );
}

/** Connected: the bridge and the bot answer and Web Chat says it is connected (it
 * drops what is sent before). Until then the send box is off, so nothing is lost. */
function showConnection() {
  const chatConnected = WEBCHAT_CONNECTED.includes(store.getState().connectivityStatus);
  const connected = connection.problem === null && chatConnected;
  connection.everConnected = connection.everConnected || connected;
  const state = connected ? 'connected' : connection.everConnected ? 'reconnecting' : 'connecting';
  const pill = document.getElementById('connection');
  pill.dataset.state = state;
  const detail = connection.problem || (chatConnected ? '' : 'opening the conversation');
  pill.textContent = connected ? CONNECTION_TEXT[state] : `${CONNECTION_TEXT[state]} ${detail}`;
  if (state !== connection.state) {
    connection.state = state;
    renderChat();
  }
}

// Web Chat's own connectivity, as it changes; shown outside the store's dispatch.
let webChatStatus;
store.subscribe(() => {
  const value = store.getState().connectivityStatus;
  if (value === webChatStatus) return;
  webChatStatus = value;
  setTimeout(showConnection);
});

/** Asks the bridge how things stand, every second: a bridge that did not answer
 * or answers as a new process (its instance changed) means a new Direct Line
 * connection to the same conversation, once the bot answers too. */
async function heartbeat() {
  let health = null;
  try {
    const response = await fetch('healthz', { cache: 'no-store' });
    if (response.ok) health = await response.json();
  } catch (error) {
    // The page's server is not answering: `make chat` is restarting or stopped.
  }
  if (health === null) {
    connection.lost = true;
    connection.problem = 'make chat is not answering';
  } else if (health.bot !== 'up') {
    connection.problem = 'the bot is not answering';
  } else {
    const restarted = connection.instance !== null && health.instance !== connection.instance;
    const directLineStatus = connection.directLine.connectionStatus$.getValue();
    const dead = [FAILED_TO_CONNECT, ENDED].includes(directLineStatus);
    if (connection.lost || restarted || dead) {
      openDirectLine(restarted ? undefined : connection.directLine.watermark || undefined);
    }
    connection.instance = health.instance;
    connection.lost = false;
    connection.problem = null;
    ids.channel = health.channel;
  }
  showConnection();
  const connected = connection.state === 'connected';
  setTimeout(heartbeat, connected ? HEARTBEAT_MS.connected : HEARTBEAT_MS.other);
}

document.getElementById('refresh').addEventListener('click', refresh);
document.getElementById('new-conversation').addEventListener('click', () => {
  localStorage.removeItem(CONVERSATION_ID_KEY);
  window.location.reload();
});

// The bot saves its state before it replies, and a turn's replies arrive
// together: read the store once, just after they have.
function scheduleRefresh() {
  clearTimeout(refreshTimer);
  refreshTimer = setTimeout(refresh, 150);
}

async function refresh() {
  if (!ids.conversation || !ids.channel) return;
  const thisRefresh = ++latestRefresh;
  let response;
  try {
    response = await fetch(`dev/state?${new URLSearchParams(ids)}`);
  } catch (error) {
    status.textContent = 'The page’s server (make chat) is not answering.';
    return;
  }
  const body = await response.json().catch(() => ({}));
  if (thisRefresh !== latestRefresh) return; // a newer read is on its way
  if (response.status === 404) {
    status.textContent =
      'The bot has no state endpoint: start it with DEV_STATE_ENDPOINT=true (make chat does).';
  } else if (!response.ok) {
    status.textContent = body.error || `The state endpoint answered ${response.status}.`;
  } else {
    renderState(body);
    status.textContent = `Read from storage at ${new Date().toLocaleTimeString()}.`;
  }
}

// ---- The state panel ----------------------------------------------------------

// What each record is, in the words of the docs' "Managing state".
const SCOPES = {
  'user state': 'Follows you into every conversation.',
  'conversation state': 'Shared by everyone in this conversation.',
  'private conversation state': 'You, in this conversation only.',
  'utterance log':
    'Written directly to storage, no state class: read, change, write back with its e_tag.',
};
const TYPE_TAG = '$type';
// What the reader unfolded ("card id/property", "card id/JSON"), kept open across refreshes.
const unfolded = new Set();

function element(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text; // text only: stored data is never HTML
  return node;
}

function isScalar(value) {
  return value === null || typeof value !== 'object';
}

/** The column names when ``items`` are objects of the same scalar fields (the
 * utterance log's entries, say), which read best as a table; else null. */
function tableColumns(items) {
  const objects = items.every((item) => !isScalar(item) && !Array.isArray(item));
  if (items.length === 0 || !objects) return null;
  const columns = Object.keys(withoutType(items[0]));
  const alike = (item) => {
    const fields = withoutType(item);
    return (
      Object.keys(fields).length === columns.length &&
      columns.every((name) => name in fields && isScalar(fields[name]))
    );
  };
  return columns.length > 0 && items.every(alike) ? columns : null;
}

/** A list of like objects as a table, newest (last) row in view: long lists scroll
 * inside it, so the card keeps its size. */
function renderTable(items, columns, path) {
  const wrap = element('div', 'table-wrap');
  const table = element('table', 'rows');
  const head = element('tr');
  head.append(element('th', '', '#'), ...columns.map((name) => element('th', '', name)));
  table.append(head);
  items.forEach((item, index) => {
    const row = element('tr');
    row.append(element('td', 'index', String(index)));
    for (const name of columns) {
      const cell = element('td');
      cell.append(renderValue(item[name], `${path}.${index}.${name}`));
      row.append(cell);
    }
    table.append(row);
  });
  wrap.append(table);
  return wrap;
}

/** A JSON value as the panel shows it: scalars inline, lists of scalars on one
 * wrapping line, lists of like objects as a table, objects as name/value rows
 * with their type as a badge. */
function renderValue(value, path) {
  if (isScalar(value)) {
    const kind = value === null ? 'null' : typeof value;
    const node = element('span', `value ${kind}`, kind === 'string' ? `"${value}"` : String(value));
    node.dataset.field = path;
    return node;
  }
  if (Array.isArray(value)) {
    if (value.every(isScalar)) {
      const list = element('span', 'value list');
      list.dataset.field = path;
      value.forEach((item, index) => list.append(renderValue(item, `${path}.${index}`)));
      return list;
    }
    const columns = tableColumns(value);
    if (columns) return renderTable(value, columns, path);
    const list = element('ol', 'items');
    list.start = 0;
    value.forEach((item, index) => {
      const entry = element('li');
      entry.append(renderValue(item, `${path}.${index}`));
      list.append(entry);
    });
    return list;
  }
  const fields = element('dl', 'fields');
  for (const [name, item] of Object.entries(value)) {
    if (name === TYPE_TAG) continue;
    const shown = renderValue(item, path ? `${path}.${name}` : name);
    const wide = shown.classList.contains('table-wrap'); // a table goes under its name
    fields.append(element('dt', wide ? 'wide' : '', name), element('dd', wide ? 'wide' : ''));
    fields.lastChild.append(shown);
  }
  if (!(TYPE_TAG in value)) return fields;
  const typed = element('div', 'typed');
  typed.append(element('span', 'type', value[TYPE_TAG]), fields);
  return typed;
}

function isTyped(value) {
  return !isScalar(value) && !Array.isArray(value) && TYPE_TAG in value;
}

function withoutType(value) {
  return Object.fromEntries(Object.entries(value).filter(([name]) => name !== TYPE_TAG));
}

/** One state property (UserProfile, DialogState...): its name, its type when that
 * differs, and its value; a dialog stack folded behind its one-line summary. */
function renderProperty(cardId, name, value, summary) {
  const block = element('section', 'property');
  block.dataset.property = name;
  const heading = element('h4', '', name);
  if (isTyped(value) && value[TYPE_TAG] !== name) {
    heading.append(' ', element('span', 'type', value[TYPE_TAG]));
  }
  const body = renderValue(isTyped(value) ? withoutType(value) : value, name);
  if (summary === undefined) {
    block.append(heading, body);
    return block;
  }
  const folded = element('details');
  const id = `${cardId}/${name}`;
  folded.open = unfolded.has(id);
  folded.addEventListener('toggle', () => (folded.open ? unfolded.add(id) : unfolded.delete(id)));
  const line = element('summary');
  // Remembered at the click, not at the toggle event, which comes a task later: a refresh
  // in between would otherwise draw the record as it was before the click.
  line.addEventListener('click', () => (folded.open ? unfolded.delete(id) : unfolded.add(id)));
  line.append(heading, element('span', 'summary', summary));
  folded.append(line, body);
  block.append(folded);
  return block;
}

/** A record's card: scope, e_tag and key, then its properties as readable rows,
 * and behind the JSON button the document exactly as stored. */
function renderRecord(record) {
  const card = element('article', 'record');
  card.id = `record-${record.scope.replace(/ /g, '-')}`;
  const top = element('div', 'record-header');
  top.append(element('h3', '', record.scope));
  const meta = element('p', 'meta');
  meta.append(element('code', 'key', record.key));
  if (record.e_tag) {
    const tag = element('span', 'etag', record.e_tag);
    tag.title = 'e_tag: the version of this record a write must match';
    meta.append(tag);
  }
  card.append(top, element('p', 'about', SCOPES[record.scope] || ''), meta);
  if (record.document === null) {
    card.append(element('p', 'empty', 'Nothing stored yet.'));
    return card;
  }

  const view = record.view;
  if (isScalar(view) || Array.isArray(view) || isTyped(view)) {
    card.append(renderValue(view, ''));
  } else {
    for (const [name, value] of Object.entries(view)) {
      card.append(renderProperty(card.id, name, value, (record.summaries || {})[name]));
    }
  }
  const raw = element('button', 'raw-toggle', 'JSON');
  raw.type = 'button';
  raw.title = 'The document exactly as stored, with the codec’s type tags';
  const stored = element('pre', 'raw', JSON.stringify(record.document, null, 2));
  const rawId = `${card.id}/JSON`;
  const show = (open) => {
    stored.hidden = !open;
    raw.setAttribute('aria-expanded', String(open));
  };
  show(unfolded.has(rawId));
  raw.addEventListener('click', () => {
    if (unfolded.has(rawId)) unfolded.delete(rawId);
    else unfolded.add(rawId);
    show(unfolded.has(rawId));
  });
  top.append(raw);
  card.append(stored);
  return card;
}

function renderState(state) {
  const idList = document.getElementById('state-ids');
  idList.replaceChildren();
  const labels = { channel: 'Channel', conversation: 'Conversation', user: 'User' };
  for (const [name, label] of Object.entries(labels)) {
    const item = element('div');
    item.dataset.id = name;
    item.append(element('dt', '', label), element('dd', '', state[name]));
    idList.append(item);
  }
  document.getElementById('records').replaceChildren(...state.records.map(renderRecord));
  for (const wrap of document.querySelectorAll('#records .table-wrap')) {
    wrap.scrollTop = wrap.scrollHeight; // the newest rows
  }
}

openDirectLine(undefined);
heartbeat();
