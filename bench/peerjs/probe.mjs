// Verifies, against the pinned PeerJS server started by ./start.sh, the wire protocol facts in
// PROTOCOL-NOTES.md. Self-contained: it starts its own servers on free ports and stops them.
//
//   node probe.mjs        (exit status 0 when every check passes)
//
// Uses the `ws` client (the same package peer's server is built on).
import { spawn } from "node:child_process";
import net from "node:net";
import { setTimeout as sleep } from "node:timers/promises";
import WebSocket from "ws";

const here = new URL(".", import.meta.url).pathname;
let failures = 0;
const check = (name, ok, detail = "") => {
  if (!ok) failures += 1;
  console.log(`${ok ? "PASS" : "FAIL"}  ${name}${detail ? `  -- ${detail}` : ""}`);
};

function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once("error", reject);
    s.listen(0, "127.0.0.1", () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

async function startServer(env = {}) {
  const port = await freePort();
  const child = spawn(`${here}start.sh`, [String(port)], {
    env: { ...process.env, ...env },
    stdio: ["ignore", "inherit", "pipe"],
  });
  let stderr = "";
  child.stderr.on("data", (d) => { stderr += d; });
  for (let i = 0; i < 100; i += 1) {
    if (stderr.includes("listening on")) return { port, child, stderr: () => stderr };
    await sleep(50);
  }
  child.kill("SIGTERM");
  throw new Error(`peerjs did not start: ${stderr}`);
}

// A client that records every text frame it receives, in order, and its close.
function client(port, query, path = "/peerjs") {
  const url = `ws://127.0.0.1:${port}${path}?${new URLSearchParams(query)}`;
  const ws = new WebSocket(url);
  const c = { ws, url, frames: [], raw: [], closed: null, opened: false, error: null, waiters: [] };
  ws.on("open", () => { c.opened = true; });
  ws.on("message", (data, isBinary) => {
    c.raw.push(data.toString());
    c.frames.push(JSON.parse(data.toString()));
    if (isBinary) c.binary = true;
    c.waiters.splice(0).forEach((w) => w());
  });
  ws.on("close", (code) => { c.closed = code; c.waiters.splice(0).forEach((w) => w()); });
  ws.on("error", (e) => { c.error = e; c.waiters.splice(0).forEach((w) => w()); });
  ws.on("unexpected-response", (_req, res) => {
    c.error = new Error(`HTTP ${res.statusCode}`);
    c.status = res.statusCode;
    c.waiters.splice(0).forEach((w) => w());
  });
  c.send = (obj) => ws.send(typeof obj === "string" ? obj : JSON.stringify(obj));
  // Wait until `pred(c)` holds or `ms` passes; returns whether it held.
  c.until = async (pred, ms = 2000) => {
    const end = Date.now() + ms;
    while (!pred(c)) {
      const left = end - Date.now();
      if (left <= 0) return false;
      await Promise.race([new Promise((r) => c.waiters.push(r)), sleep(Math.min(left, 50))]);
    }
    return true;
  };
  return c;
}
const j = (x) => JSON.stringify(x);

// ---------------------------------------------------------------------------------------------
const main = await startServer();
const P = main.port;
try {
  // 1. The URL and the first frame.
  const a = client(P, { key: "peerjs", id: "alice", token: "ta", version: "1.5.4" });
  await a.until((c) => c.frames.length >= 1);
  check("GET /peerjs?key=peerjs&id=alice&token=ta upgrades; first frame is OPEN",
    a.opened && a.raw[0] === '{"type":"OPEN"}', `got ${a.raw[0]}`);

  const b = client(P, { key: "peerjs", id: "bob", token: "tb" });
  await b.until((c) => c.frames.length >= 1);
  check("the version query parameter is optional", b.raw[0] === '{"type":"OPEN"}', `got ${b.raw[0]}`);

  // 2. Relaying a CANDIDATE: the server keeps only type/src/dst/payload, sets src, re-serialises.
  const payload = { candidate: { candidate: "candidate:1 1 udp 2122260223 10.0.0.1 50000 typ host", sdpMid: "0", sdpMLineIndex: 0 }, type: "media", connectionId: "mc_x", t: 12345.678 };
  a.send({ type: "CANDIDATE", dst: "bob", payload, src: "forged", extra: "dropped" });
  await b.until((c) => c.frames.length >= 2);
  const expected = j({ type: "CANDIDATE", src: "alice", dst: "bob", payload });
  check("CANDIDATE {type,dst,payload} reaches dst as {type,src,dst,payload} with src = sender id (a forged src is overwritten, extra top-level fields dropped)",
    b.raw[1] === expected, `got ${b.raw[1]}`);
  check("the relayed frame is a text frame", !b.binary);

  // OFFER / ANSWER are relayed the same way.
  b.send({ type: "ANSWER", dst: "alice", payload: { sdp: { type: "answer", sdp: "v=0" } } });
  a.send({ type: "OFFER", dst: "bob", payload: { sdp: { type: "offer", sdp: "v=0" } } });
  await a.until((c) => c.frames.length >= 2);
  await b.until((c) => c.frames.length >= 3);
  check("OFFER and ANSWER relay the same way", a.frames[1]?.type === "ANSWER" && a.frames[1]?.src === "bob" && b.frames[2]?.type === "OFFER",
    `alice got ${a.raw[1]}, bob got ${b.raw[2]}`);

  // 3. HEARTBEAT gets no reply; unknown types and non-JSON are dropped silently, socket stays up.
  a.send({ type: "HEARTBEAT" });
  a.send({ type: "NONSENSE", dst: "bob" });
  a.send("not json");
  a.send({ dst: "bob", payload: {} });
  await sleep(300);
  check("HEARTBEAT, unknown types, a frame without type and non-JSON are dropped without reply or close",
    a.frames.length === 2 && b.frames.length === 3 && a.closed === null && b.closed === null,
    `alice frames ${a.frames.length}, bob frames ${b.frames.length}, alice closed ${a.closed}`);

  // 4. Handshake refusals.
  const noTok = client(P, { key: "peerjs", id: "x1" });
  await noTok.until((c) => c.closed !== null || c.error);
  check("missing id/token/key: upgrade succeeds, then ERROR frame and close",
    noTok.raw[0] === j({ type: "ERROR", payload: { msg: "No id, token, or key supplied to websocket server" } }), `got ${noTok.raw[0]} close ${noTok.closed}`);
  const badKey = client(P, { key: "nope", id: "x2", token: "t" });
  await badKey.until((c) => c.closed !== null || c.error);
  check("wrong key: ERROR 'Invalid key provided' and close",
    badKey.frames[0]?.type === "ERROR" && badKey.frames[0]?.payload?.msg === "Invalid key provided", `got ${badKey.raw[0]}`);
  const taken = client(P, { key: "peerjs", id: "alice", token: "other" });
  await taken.until((c) => c.closed !== null || c.error);
  check("an id in use with another token: ID-TAKEN and close",
    taken.raw[0] === j({ type: "ID-TAKEN", payload: { msg: "ID is taken" } }), `got ${taken.raw[0]}`);
  for (const path of ["/", "/peerjs/", "/ws"]) {
    const wrong = client(P, { key: "peerjs", id: "x3", token: "t" }, path);
    await wrong.until((c) => c.closed !== null || c.error);
    check(`path ${path} is refused (only exactly /peerjs upgrades)`, !wrong.opened, `${wrong.error ?? wrong.closed}`);
  }

  // 5. Same id + same token on a new socket: no OPEN, the new socket takes over the id.
  const a2 = client(P, { key: "peerjs", id: "alice", token: "ta" });
  await a2.until((c) => c.opened);
  await sleep(200);
  b.send({ type: "CANDIDATE", dst: "alice", payload: { n: 1 } });
  await a2.until((c) => c.frames.length >= 1);
  check("reconnecting with the same id and token: no OPEN; frames now go to the new socket",
    a2.frames.length === 1 && a2.frames[0].type === "CANDIDATE" && a.frames.length === 2, `new got ${a2.raw.join(" ")}`);
  a2.ws.close();
  a.ws.close();
  await sleep(200);

  // 6. dst not connected: queued; delivered when it connects, else EXPIRE back to the sender.
  b.send({ type: "CANDIDATE", dst: "late", payload: { q: 1 } });
  await sleep(200);
  const late = client(P, { key: "peerjs", id: "late", token: "tl" });
  await late.until((c) => c.frames.length >= 2);
  check("a frame to an absent dst is queued and delivered right after that peer's OPEN",
    late.frames[0]?.type === "OPEN" && late.frames[1]?.type === "CANDIDATE" && late.frames[1]?.src === "bob", `got ${late.raw.join(" ")}`);
  const before = b.frames.length;
  b.send({ type: "CANDIDATE", dst: "never", payload: { q: 2 } });
  const expired = await b.until((c) => c.frames.length > before, 8000);
  check("never-connecting dst: after expire_timeout (5 s, swept every 1 s) the sender gets EXPIRE with src = the absent id",
    expired && b.raw[before] === j({ type: "EXPIRE", src: "never", dst: "bob" }), `got ${b.raw[before]}`);

  // 7. Relay latency sanity: 2,000 frames bob -> late, one at a time.
  const lat = [];
  for (let i = 0; i < 2000; i += 1) {
    const n = late.frames.length;
    const t0 = performance.now();
    b.send({ type: "CANDIDATE", dst: "late", payload: { i } });
    await late.until((c) => c.frames.length > n, 1000);
    lat.push(performance.now() - t0);
  }
  lat.sort((x, y) => x - y);
  console.log(`info  2000 sequential relays: p50 ${lat[1000].toFixed(3)} ms, p99 ${lat[1980].toFixed(3)} ms (this machine, probe-bound)`);
  late.ws.close();
  b.ws.close();
} finally {
  main.child.kill("SIGTERM");
}

// 8. alive_timeout: a client that sends no HEARTBEAT is closed; one that does stays.
{
  const s = await startServer({ PEERJS_ALIVE_TIMEOUT_MS: "1000" });
  try {
    const quiet = client(s.port, { key: "peerjs", id: "quiet", token: "t" });
    const beat = client(s.port, { key: "peerjs", id: "beat", token: "t" });
    await quiet.until((c) => c.frames.length >= 1);
    await beat.until((c) => c.frames.length >= 1);
    const timer = setInterval(() => beat.send({ type: "HEARTBEAT" }), 250);
    const t0 = Date.now();
    const closed = await quiet.until((c) => c.closed !== null, 3000);
    const after = Date.now() - t0;
    await sleep(500);
    clearInterval(timer);
    check("alive_timeout=1000: a client without HEARTBEAT is closed (checked every 300 ms); one sending HEARTBEAT stays",
      closed && after < 2000 && beat.closed === null, `quiet closed after ${after} ms (code ${quiet.closed}), beat closed ${beat.closed}`);
    // Any other frame does not count as liveness: only HEARTBEAT updates lastPing.
    const chatty = client(s.port, { key: "peerjs", id: "chatty", token: "t" });
    await chatty.until((c) => c.frames.length >= 1);
    const t2 = setInterval(() => chatty.send({ type: "CANDIDATE", dst: "beat", payload: {} }), 100);
    const chattyClosed = await chatty.until((c) => c.closed !== null, 3000);
    clearInterval(t2);
    check("relayed frames do not count as liveness (only HEARTBEAT does)", chattyClosed, `closed ${chatty.closed}`);
    beat.ws.close();
  } finally {
    s.child.kill("SIGTERM");
  }
}

// 9. concurrent_limit: client number limit+1 is refused.
{
  const s = await startServer({ PEERJS_CONCURRENT_LIMIT: "3" });
  try {
    const cs = [1, 2, 3, 4].map((i) => client(s.port, { key: "peerjs", id: `c${i}`, token: "t" }));
    for (const c of cs) await c.until((x) => x.frames.length >= 1 || x.closed !== null);
    await cs[3].until((x) => x.closed !== null);
    check("concurrent_limit=3: the 4th client gets ERROR 'Server has reached its concurrent user limit' and is closed",
      cs.slice(0, 3).every((c) => c.frames[0]?.type === "OPEN") &&
        cs[3].raw[0] === j({ type: "ERROR", payload: { msg: "Server has reached its concurrent user limit" } }) && cs[3].closed !== null,
      `4th got ${cs[3].raw[0]}`);
    cs.forEach((c) => c.ws.close());
  } finally {
    s.child.kill("SIGTERM");
  }
}

// 10. Many sockets from one address: 3,000 at once against the default start settings.
{
  const s = await startServer();
  try {
    const N = Number.parseInt(process.env.PROBE_SOCKETS ?? "3000", 10);
    const t0 = performance.now();
    const cs = Array.from({ length: N }, (_, i) => client(s.port, { key: "peerjs", id: `u${i}`, token: "t" }));
    await Promise.all(cs.map((c) => c.until((x) => x.frames.length >= 1 || x.closed !== null || x.error, 30000)));
    const ok = cs.filter((c) => c.raw[0] === '{"type":"OPEN"}').length;
    const ms = performance.now() - t0;
    check(`${N} sockets at once from 127.0.0.1 all get OPEN (no per-IP limit, concurrent_limit raised)`, ok === N,
      `${ok}/${N} in ${ms.toFixed(0)} ms; errors: ${cs.filter((c) => c.error).slice(0, 3).map((c) => c.error.message).join(", ")}`);
    cs.forEach((c) => c.ws.terminate());
  } finally {
    s.child.kill("SIGTERM");
  }
}

console.log(failures === 0 ? "all checks passed" : `${failures} check(s) failed`);
process.exit(failures === 0 ? 0 : 1);
