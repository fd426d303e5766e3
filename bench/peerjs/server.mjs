// The PeerJS server (npm `peer`, pinned in package.json) on 127.0.0.1:PORT, in the foreground,
// configured for a load test: no per-connection logging (the `peerjs` binary prints a line per
// connect and disconnect), no concurrent-client cap, no idle eviction during a run.
//
//   node server.mjs PORT            (or ./start.sh PORT)
//
// Environment (all optional):
//   PEERJS_HOST              listen address, default 127.0.0.1
//   PEERJS_CONCURRENT_LIMIT  max registered clients, default 1000000 (peer's default is 5000:
//                            client 5001 gets ERROR "Server has reached its concurrent user limit")
//   PEERJS_ALIVE_TIMEOUT_MS  close a client with no HEARTBEAT for this long, default 3600000
//                            (peer's library default is 90000, its CLI's 60000)
//   PEERJS_BACKLOG           listen(2) backlog, default 511 (Node's own default, which is also
//                            what peer's PeerServer() uses)
//
// One line goes to stderr once listening; nothing per connection. SIGTERM/SIGINT exit at once.
import http from "node:http";
import { readFileSync } from "node:fs";
import express from "express";
import { ExpressPeerServer } from "peer";

const port = Number.parseInt(process.argv[2] ?? process.env.PORT ?? "9000", 10);
const host = process.env.PEERJS_HOST ?? "127.0.0.1";
const num = (name, dflt) => {
  const v = Number.parseInt(process.env[name] ?? "", 10);
  return Number.isFinite(v) && v > 0 ? v : dflt;
};

const app = express();
const server = http.createServer(app);
const peer = ExpressPeerServer(server, {
  key: "peerjs", // clients must send ?key=peerjs
  path: "/", // so the WebSocket endpoint is /peerjs
  concurrent_limit: num("PEERJS_CONCURRENT_LIMIT", 1_000_000),
  alive_timeout: num("PEERJS_ALIVE_TIMEOUT_MS", 3_600_000),
  expire_timeout: 5000, // peer's default: queued frames to an absent dst expire after 5 s
  allow_discovery: false,
});
app.use("/", peer);

// peer re-emits socket errors and unparsable frames as "error" on its app; an EventEmitter
// "error" without a listener throws, which would kill the server mid-run. Count them instead.
let errors = 0;
peer.on("error", () => { errors += 1; });
process.on("uncaughtException", (e) => { errors += 1; if (errors <= 5) console.error(`peerjs: ${e}`); });

const stop = () => { console.error(`peerjs: stopping (${errors} errors)`); process.exit(0); };
process.on("SIGTERM", stop);
process.on("SIGINT", stop);

server.listen({ port, host, backlog: num("PEERJS_BACKLOG", 511) }, () => {
  const a = server.address();
  console.error(`peerjs: peer ${peerVersion()} listening on ws://${a.address}:${a.port}/peerjs (node ${process.version})`);
});

function peerVersion() {
  try {
    return JSON.parse(readFileSync(new URL("./node_modules/peer/package.json", import.meta.url), "utf8")).version;
  } catch {
    return "?";
  }
}
