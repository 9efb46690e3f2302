#!/usr/bin/env node
/**
 * Chat with the bot in a browser, on this machine only.
 *
 *   node webchat/server.js [--port 3000] [--bot http://127.0.0.1:3978]
 *   (or WEBCHAT_PORT and BOT_URL in the environment)
 *
 * One small HTTP server, listening on 127.0.0.1, plays these parts:
 *
 * - Direct Line. In Azure, Web Chat talks to the Direct Line service, which
 *   forwards each message to the bot's /api/messages and hands the bot's replies
 *   back to Web Chat. offline-directline's router does the same here: Web Chat
 *   uses /directline/...; the activities it forwards name this server as their
 *   serviceUrl, so the bot POSTs its replies to /v3/conversations/... here.
 * - Resuming a conversation. The page keeps its conversation id and asks for it
 *   again after a reload or a restart of this server (GET
 *   /directline/conversations/:id, Direct Line's reconnect call). The router
 *   keeps conversations in memory only, so it is built to accept a conversation
 *   id it has not seen and start that conversation's history afresh.
 * - The channel. The router forwards to /bot/api/messages on this server, which
 *   names the channel "webchat" (the router always says "emulator") and passes
 *   the activity on to the bot; a bot that does not answer is a 502, not a hang.
 * - The page: index.html, app.js, style.css and Web Chat's own bundle, served
 *   from node_modules (nothing from a CDN).
 * - GET /healthz, which the page polls to show its connection: this server's
 *   instance id (a new one after a restart) and whether the bot's port answers.
 * - The state panel's data: GET /dev/state is passed on to the bot's
 *   development-only endpoint, so the page never needs the bot's port.
 */
'use strict';

const crypto = require('crypto');
const fs = require('fs');
const http = require('http');
const net = require('net');
const path = require('path');

const { getRouter } = require('offline-directline');
// The router is an Express 4 router: mount it in the Express it was built with.
const bridgeDir = path.dirname(require.resolve('offline-directline'));
const express = require(require.resolve('express', { paths: [bridgeDir] }));

const HOST = '127.0.0.1';
const CHANNEL_ID = 'webchat';
// Direct Line conversation ids the page may ask to resume: the router's own
// (UUIDs) and anything of the same alphabet, never a path or a query.
const CONVERSATION_ID = /^[A-Za-z0-9._-]{1,128}$/;
const INSTANCE = crypto.randomUUID();
const webchatDir = path.join(path.dirname(require.resolve('botframework-webchat')), '..');
const WEBCHAT_BUNDLE = path.join(webchatDir, 'dist', 'webchat.js');

function option(name, envName, fallback) {
  const index = process.argv.indexOf(`--${name}`);
  if (index !== -1 && process.argv[index + 1]) return process.argv[index + 1];
  return process.env[envName] || fallback;
}

const port = Number(option('port', 'WEBCHAT_PORT', '3000'));
const botUrl = option('bot', 'BOT_URL', 'http://127.0.0.1:3978').replace(/\/+$/, '');
const serviceUrl = `http://${HOST}:${port}`;

const app = express();

// Answer only requests addressed to this machine: a web page whose hostname was
// made to resolve to 127.0.0.1 ("DNS rebinding") gets nothing.
app.use((req, res, next) => {
  const hostname = (req.headers.host || '').replace(/:\d+$/, '');
  if (hostname === HOST || hostname === 'localhost') return next();
  res.status(403).send('This server answers only on 127.0.0.1.');
});

// Direct Line tokens expire and Web Chat refreshes them every 15 minutes; the
// real service issues a new one, here any token will do.
app.post('/directline/tokens/refresh', (req, res) => {
  res.json({ token: 'local', expires_in: 1800 });
});

// Direct Line's reconnect: any well-formed id is accepted, known or not, since
// the router (built with conversationInitRequired off) starts its history on first use.
app.get('/directline/conversations/:conversationId', (req, res) => {
  const { conversationId } = req.params;
  if (!CONVERSATION_ID.test(conversationId)) {
    const error = { code: 'BadArgument', message: 'Not a conversation id.' };
    return res.status(400).json({ error });
  }
  res.json({ conversationId, token: 'local', expires_in: 1800 });
});

// What the router forwards, on its way to the bot, with this channel's name on it.
app.post('/bot/api/messages', express.json({ limit: '1mb' }), (req, res) => {
  const body = JSON.stringify({ ...req.body, channelId: CHANNEL_ID });
  const upstream = http.request(`${botUrl}/api/messages`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(body) },
  });
  upstream.setTimeout(30000, () => upstream.destroy(new Error('timed out')));
  upstream.on('response', (answer) => {
    res.status(answer.statusCode);
    answer.pipe(res);
  });
  upstream.on('error', (error) => {
    console.error(`Could not reach the bot at ${botUrl}/api/messages: ${error.message}`);
    if (res.headersSent) return res.destroy();
    res.status(502).json({ error: `the bot at ${botUrl} is not answering (${error.message})` });
  });
  upstream.end(body);
});

app.use(getRouter(serviceUrl, `${serviceUrl}/bot/api/messages`, false));

// The page: these files and nothing else.
const PAGE = {
  '/': path.join(__dirname, 'index.html'),
  '/app.js': path.join(__dirname, 'app.js'),
  '/style.css': path.join(__dirname, 'style.css'),
  '/webchat.js': WEBCHAT_BUNDLE,
};
for (const [route, file] of Object.entries(PAGE)) {
  app.get(route, (req, res) => res.sendFile(file));
}
app.get('/favicon.ico', (req, res) => res.status(204).end());

/** Resolves true when something accepts a TCP connection on the bot's port:
 * quiet, unlike a GET the bot would write to its access log every second. */
function botListening() {
  const { hostname, port: botPort } = new URL(botUrl);
  return new Promise((resolve) => {
    const socket = net.connect({ host: hostname, port: Number(botPort) || 80 });
    socket.setTimeout(1000);
    socket.once('connect', () => socket.end(() => resolve(true)));
    socket.once('timeout', () => socket.destroy());
    socket.once('error', () => resolve(false));
    socket.once('close', () => resolve(false));
  });
}

app.get('/healthz', async (req, res) => {
  const bot = (await botListening()) ? 'up' : 'down';
  res.set('Cache-Control', 'no-store');
  res.json({ service: 'state-bot-webchat', instance: INSTANCE, channel: CHANNEL_ID, bot });
});

app.get('/dev/state', (req, res) => {
  const { search } = new URL(req.originalUrl, serviceUrl);
  const upstream = http.get(`${botUrl}/dev/state${search}`, (answer) => {
    res.status(answer.statusCode).type('application/json');
    answer.pipe(res);
  });
  upstream.setTimeout(5000, () => upstream.destroy(new Error('timed out')));
  upstream.on('error', (error) => {
    if (res.headersSent) return res.destroy();
    res.status(502).json({ error: `the bot at ${botUrl} is not answering (${error.message})` });
  });
});

if (!fs.existsSync(WEBCHAT_BUNDLE)) {
  console.error(`Web Chat's bundle is missing (${WEBCHAT_BUNDLE}): run npm ci.`);
  process.exit(1);
}

const server = app
  .listen(port, HOST, () => {
    console.log(`Direct Line bridge on ${serviceUrl}/ for the bot at ${botUrl}/api/messages`);
  })
  .on('error', (error) => {
    console.error(`Cannot listen on ${HOST}:${port} (${error.code}): set WEBCHAT_PORT or --port.`);
    process.exit(1);
  });

// Stop when asked to (tools/chat.py sends SIGTERM): close the listener and exit 0.
for (const signal of ['SIGTERM', 'SIGINT']) {
  process.on(signal, () => {
    server.close(() => process.exit(0));
    server.closeAllConnections();
  });
}
