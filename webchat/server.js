#!/usr/bin/env node
/**
 * Chat with the bot in a browser, on this machine only.
 *
 *   node webchat/server.js [--port 3000] [--bot http://127.0.0.1:3978]
 *   (or WEBCHAT_PORT and BOT_URL in the environment)
 *
 * One small HTTP server, listening on 127.0.0.1, plays three parts:
 *
 * - Direct Line. In Azure, Web Chat talks to the Direct Line service, which
 *   forwards each message to the bot's /api/messages and hands the bot's replies
 *   back to Web Chat. offline-directline's router does the same here: Web Chat
 *   uses /directline/...; the activities it forwards name this server as their
 *   serviceUrl, so the bot POSTs its replies to /v3/conversations/... here.
 * - The page: index.html, app.js, style.css and Web Chat's own bundle, served
 *   from node_modules (nothing from a CDN).
 * - The state panel's data: GET /dev/state is passed on to the bot's
 *   development-only endpoint, so the page never needs the bot's port.
 */
'use strict';

const fs = require('fs');
const http = require('http');
const path = require('path');

const { getRouter } = require('offline-directline');
// The router is an Express 4 router: mount it in the Express it was built with.
const bridgeDir = path.dirname(require.resolve('offline-directline'));
const express = require(require.resolve('express', { paths: [bridgeDir] }));

const HOST = '127.0.0.1';
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
app.post('/directline/tokens/refresh', (req, res) => res.json({ token: 'local', expires_in: 1800 }));
app.use(getRouter(serviceUrl, `${botUrl}/api/messages`));

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

// offline-directline forwards to the bot without catching failures: when the bot
// is down (restarting, say) report it instead of letting Node end the process.
process.on('unhandledRejection', (reason) => {
  console.error(`Could not reach the bot at ${botUrl}/api/messages: ${reason && reason.message}`);
});

if (!fs.existsSync(WEBCHAT_BUNDLE)) {
  console.error(`Web Chat's bundle is missing (${WEBCHAT_BUNDLE}): run npm ci.`);
  process.exit(1);
}

app
  .listen(port, HOST, () => {
    console.log(`Direct Line bridge for the bot at ${botUrl}/api/messages`);
    console.log(`Chat with the bot: http://${HOST}:${port}/`);
  })
  .on('error', (error) => {
    console.error(`Cannot listen on ${HOST}:${port} (${error.code}): set WEBCHAT_PORT or --port.`);
    process.exit(1);
  });
