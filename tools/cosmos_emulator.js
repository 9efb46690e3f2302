#!/usr/bin/env node
// A local Cosmos DB (NoSQL API) for tests and `STORAGE=cosmos make run`, on 127.0.0.1 only.
//
// Usage: node tools/cosmos_emulator.js --port 8081 [--host 127.0.0.1] [--latency-ms 0] [--key KEY]
// (--port 0 picks a free port; --latency-ms delays every answer, like a network
// round trip to Azure, so tests can see whether the bot's event loop waits for it;
// --key checks every request's master-key signature as Azure does, answering 401 to a
// wrong one: the package itself takes any signature.)
//
// Why not the package's own `cosmosdb-server` command (@vercel/cosmosdb-server 1.0.1):
// - its point read of a missing document in a partitioned container crashes
//   (handler/read-document.js reads a property of `undefined`) and answers 500
//   instead of 404, so every first read of a new user would fail;
// - it answers every request with `Connection: close`, so each call opens a new
//   TCP connection (about 20x slower with azure-cosmos). We ask for keep-alive.
// It speaks plain HTTP: point the app at http://127.0.0.1:<port>/ with
// COSMOS_DB_ENDPOINT_DISCOVERY=false (the server advertises https:// locations).
"use strict";

const readDocument = require("@vercel/cosmosdb-server/lib/handler/read-document");
const partitionHeader = require("@vercel/cosmosdb-server/lib/utils/get-partition-from-header");

// Patch the handler before `routes` is loaded: the router keeps the function it finds then.
const crashingRead = readDocument.default;
readDocument.default = (account, req, res, params) => {
  const collection = account.database(params.dbId).collection(params.collId);
  const header = partitionHeader.default(req);
  if (collection.read() && header) {
    const partitionKey = partitionHeader.parsePartitionKey(header, params.docId);
    if (!collection.document(params.docId, partitionKey).read()) {
      res.statusCode = 404;
      return { code: "NotFound", message: "Entity with the specified id does not exist in the system." };
    }
  }
  return crashingRead(account, req, res, params);
};

const crypto = require("crypto");
const { createHttpServer } = require("@vercel/cosmosdb-server");

// The signature Azure expects ("Access control in Azure Cosmos DB"): HMAC-SHA256 of the
// verb, the resource type, the resource link (names as they are, not URL-encoded) and the
// dates, with the base64-decoded account key.
function masterKeyToken(key, req) {
  const parts = new URL(req.url, "http://localhost").pathname.split("/").filter(Boolean).map(decodeURIComponent);
  const odd = parts.length % 2 === 1;
  const type = odd ? parts[parts.length - 1] : parts.length ? parts[parts.length - 2] : "";
  const link = (odd ? parts.slice(0, -1) : parts).join("/");
  const xDate = (req.headers["x-ms-date"] || "").toLowerCase();
  const httpDate = (req.headers["date"] || "").toLowerCase();
  const text = `${req.method.toLowerCase()}\n${type.toLowerCase()}\n${link}\n${xDate}\n${httpDate}\n`;
  const signature = crypto.createHmac("sha256", Buffer.from(key, "base64")).update(text, "utf8").digest("base64");
  return `type=master&ver=1.0&sig=${signature}`;
}

function signedWith(key, req) {
  let sent;
  let expected;
  try {
    sent = Buffer.from(decodeURIComponent(req.headers["authorization"] || ""));
    expected = Buffer.from(masterKeyToken(key, req));
  } catch (err) {
    return false; // a header or a path that is not valid percent-encoding
  }
  return sent.length === expected.length && crypto.timingSafeEqual(sent, expected);
}

function parseArgs(argv) {
  const args = { host: "127.0.0.1", port: 8081, latencyMs: 0 };
  for (let i = 0; i < argv.length; i += 1) {
    if (argv[i] === "--port" || argv[i] === "-p") args.port = parseInt(argv[(i += 1)], 10);
    else if (argv[i] === "--host") args.host = argv[(i += 1)];
    else if (argv[i] === "--latency-ms") args.latencyMs = parseInt(argv[(i += 1)], 10);
    else if (argv[i] === "--key") args.key = argv[(i += 1)];
    else throw new Error(`unknown argument ${argv[i]} (use --port N [--host 127.0.0.1])`);
  }
  if (!Number.isInteger(args.port) || args.port < 0 || args.port > 65535) {
    throw new Error("--port must be a number from 0 to 65535");
  }
  return args;
}

const { host, port, latencyMs, key } = parseArgs(process.argv.slice(2));
const server = createHttpServer({ keepAlive: true });
const [handle] = server.listeners("request");
server.removeAllListeners("request");
const checked = (req, res) => {
  if (key && !signedWith(key, req)) {
    req.resume();
    res.writeHead(401, { "content-type": "application/json", connection: "keep-alive" });
    res.end(JSON.stringify({ code: "Unauthorized", message: "The input authorization token can't serve the request." }));
    return;
  }
  handle(req, res);
};
server.on("request", latencyMs > 0 ? (req, res) => setTimeout(() => checked(req, res), latencyMs) : checked);
server.keepAliveTimeout = 60_000;
server.listen(port, host, () => {
  const address = server.address();
  console.log(`Cosmos DB emulator ready at http://${address.address}:${address.port}/`);
});

const stop = () => server.close(() => process.exit(0));
process.on("SIGTERM", stop);
process.on("SIGINT", stop);
