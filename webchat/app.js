/* Web Chat on the local Direct Line bridge, and beside it what the bot stored. */
'use strict';

// A user id that survives reloads: reload the page and a new conversation starts,
// but user state (your name) follows you into it.
const USER_ID_KEY = 'state-bot-user-id';
const userID = localStorage.getItem(USER_ID_KEY) || `web-user-${crypto.randomUUID().slice(0, 8)}`;
localStorage.setItem(USER_ID_KEY, userID);

// Direct Line through webchat/server.js. Any token will do locally; polling every
// 200 ms (the fastest Web Chat allows) shows a reply about 0.2 s after it is sent.
const directLine = window.WebChat.createDirectLine({
  domain: `${window.location.origin}/directline`,
  token: 'local',
  webSocket: false,
  pollingInterval: 200,
});

window.WebChat.renderWebChat(
  {
    directLine,
    userID,
    username: 'You',
    styleOptions: { hideUploadButton: true, botAvatarInitials: 'Bot', userAvatarInitials: 'You' },
  },
  document.getElementById('webchat'),
);

// What each record is, in the words of the docs' "Managing state".
const SCOPES = {
  'user state':
    'Follows you into every conversation: your UserProfile, and the conversations you were in.',
  'conversation state':
    'Shared by everyone in this conversation: ConversationData, the dialog stack (DialogState) and the PizzaOrder.',
  'private conversation state': 'You, in this conversation only.',
  'utterance log': 'Written directly to storage, no state class: read, change, write back with its e_tag.',
};

// The channel and conversation come from the activities, exactly as the bot sees them.
const ids = { channel: null, conversation: null, user: userID };
const status = document.getElementById('state-status');
let refreshTimer;
let latestRefresh = 0;

directLine.activity$.subscribe((activity) => {
  if (!activity.channelId || !activity.conversation) return;
  ids.channel = activity.channelId;
  ids.conversation = activity.conversation.id;
  // The bot saves its state before it replies, and a turn's replies arrive
  // together: read the store once, just after they have.
  clearTimeout(refreshTimer);
  refreshTimer = setTimeout(refresh, 150);
});
document.getElementById('refresh').addEventListener('click', refresh);

async function refresh() {
  if (!ids.conversation) return;
  const thisRefresh = ++latestRefresh;
  let response;
  try {
    response = await fetch(`dev/state?${new URLSearchParams(ids)}`);
  } catch (error) {
    status.textContent = `Could not reach the page's server: ${error.message}`;
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
    render(body);
    status.textContent = `Read from storage at ${new Date().toLocaleTimeString()}.`;
  }
}

function element(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text; // text only: stored data is never HTML
  return node;
}

function render(state) {
  const idList = document.getElementById('state-ids');
  idList.replaceChildren();
  const labels = { channel: 'Channel', conversation: 'Conversation', user: 'User' };
  for (const [name, label] of Object.entries(labels)) {
    idList.append(element('dt', '', label), element('dd', '', state[name]));
  }
  const records = document.getElementById('records');
  records.replaceChildren();
  for (const record of state.records) {
    const card = element('article', 'record');
    card.id = `record-${record.scope.replace(/ /g, '-')}`;
    card.append(element('h3', '', record.scope), element('p', 'about', SCOPES[record.scope] || ''));
    const key = element('p', 'key');
    key.append(element('span', '', 'key '), element('code', '', record.key));
    if (record.e_tag) key.append(element('span', '', ' e_tag '), element('code', '', record.e_tag));
    card.append(key);
    card.append(
      record.document === null
        ? element('p', 'empty', 'Nothing stored yet.')
        : element('pre', '', JSON.stringify(record.document, null, 2)),
    );
    records.append(card);
  }
}
