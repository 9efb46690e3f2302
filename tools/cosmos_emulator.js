#!/usr/bin/env node
// A local Cosmos DB (NoSQL API) for tests and `STORAGE=cosmos make run`, on 127.0.0.1 only.
//
// Usage: node tools/cosmos_emulator.js --port 8081 [--host 127.0.0.1] [--latency-ms 0]
// (--port 0 picks a free port; --latency-ms delays every answer, like a network
// round trip to Azure, so tests can see whether the bot's event loop waits for it.)
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

const { createHttpServer } = require("@vercel/cosmosdb-server");

function parseArgs(argv) {
  const args = { host: "127.0.0.1", port: 8081, latencyMs: 0 };
  for (let i = 0; i < argv.length; i += 1) {
    if (argv[i] === "--port" || argv[i] === "-p") args.port = parseInt(argv[(i += 1)], 10);
    else if (argv[i] === "--host") args.host = argv[(i += 1)];
    else if (argv[i] === "--latency-ms") args.latencyMs = parseInt(argv[(i += 1)], 10);
    else throw new Error(`unknown argument ${argv[i]} (use --port N [--host 127.0.0.1])`);
  }
  if (!Number.isInteger(args.port) || args.port < 0 || args.port > 65535) {
    throw new Error("--port must be a number from 0 to 65535");
  }
  return args;
}

const { host, port, latencyMs } = parseArgs(process.argv.slice(2));
const server = createHttpServer({ keepAlive: true });
if (latencyMs > 0) {
  const [handle] = server.listeners("request");
  server.removeAllListeners("request");
  server.on("request", (req, res) => setTimeout(() => handle(req, res), latencyMs));
}
server.keepAliveTimeout = 60_000;
server.listen(port, host, () => {
  const address = server.address();
  console.log(`Cosmos DB emulator ready at http://${address.address}:${address.port}/`);
});

const stop = () => server.close(() => process.exit(0));
process.on("SIGTERM", stop);
process.on("SIGINT", stop);
