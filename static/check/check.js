// The network self-test: gathers ICE candidates the way a call does, with the server's ICE
// servers, and explains in words what was found. Results are also left on `window.duetCheck`
// for automated tests.

const zh = (navigator.languages || [navigator.language]).some((l) => /^zh/i.test(l));
const T = zh
  ? {
      title: '网络检测', lead: '像通话一样使用本服务器的 STUN/TURN 收集 ICE 候选地址，并说明它们对通话意味着什么。',
      again: '重新检测', back: '返回 duet', details: '收集到的候选地址', running: '正在检测…',
      signin: '请先登录，检测需要服务器为你签发的 TURN 凭据。',
      host: '本机地址', srflx: '公网地址 (STUN)', relay: '中继 (TURN)',
      hostYes: '找到了：同一网络内的设备可以直接连接。', hostNo: '没有找到：浏览器可能禁止了摄像头权限或本地地址。',
      srflxYes: '找到了：经 NAT 后的公网地址可见，大多数跨网络通话可以直连。', srflxNo: '没有找到：STUN 不可达，或者服务器与你处于同一网络。',
      relayYes: '找到了：即使在严格的防火墙后，通话也能经服务器中继接通。', relayNo: '没有找到：TURN 中继不可达（UDP 端口被阻止或凭据被拒）。跨网络通话可能失败。',
      good: '良好：你的通话应该都能接通。', fair: '一般：同一网络内可以通话，跨网络的通话可能失败。', bad: '有问题：没有找到任何候选地址。',
      error: '检测失败：',
      relay_udp: '经 UDP 中继', relay_tcp: '经 TCP 中继', relay_tls: '经 TLS 中继',
      relay_udpYes: '可用。', relay_udpNo: '不可用：UDP 可能被阻止。',
      relay_tcpYes: '可用：即使网络阻止 UDP，通话也能接通。', relay_tcpNo: '不可用：TCP 端口被阻止。',
      relay_tlsYes: '可用：即使网络只允许 HTTPS，通话也能接通。', relay_tlsNo: '不可用：TLS 端口被阻止，或证书不被信任。',
    }
  : {
      title: 'Network check', lead: "Gathers ICE candidates with this server's STUN/TURN servers, as a call would, and says what they mean for your calls.",
      again: 'Run again', back: 'Back to duet', details: 'Candidates gathered', running: 'Checking…',
      signin: 'Sign in first: the check uses the TURN credentials the server issues to you.',
      host: 'Local address', srflx: 'Public address (STUN)', relay: 'Relay (TURN)',
      hostYes: 'Found: devices on the same network can connect directly.', hostNo: 'Not found: the browser may hide local addresses.',
      srflxYes: 'Found: your public address behind NAT is visible, so most calls across networks can connect directly.',
      srflxNo: 'Not found: STUN is unreachable, or the server is on your own network.',
      relayYes: 'Found: calls will connect even behind strict firewalls, relayed through the server.',
      relayNo: 'Not found: the TURN relay is unreachable (UDP blocked, or credentials refused). Calls across networks may fail.',
      good: 'Good: your calls should connect.', fair: 'Fair: calls on this network work; calls across networks may fail.',
      bad: 'Problem: no candidates were found at all.', error: 'The check failed: ',
      relay_udp: 'Relay over UDP', relay_tcp: 'Relay over TCP', relay_tls: 'Relay over TLS',
      relay_udpYes: 'Works.', relay_udpNo: 'Does not work: UDP may be blocked here.',
      relay_tcpYes: 'Works: calls connect even where UDP is blocked.', relay_tcpNo: 'Does not work: the TCP port is blocked.',
      relay_tlsYes: 'Works: calls connect even where only HTTPS is allowed.',
      relay_tlsNo: 'Does not work: the TLS port is blocked, or its certificate is not trusted.',
    };

document.documentElement.lang = zh ? 'zh-CN' : 'en';
for (const el of document.querySelectorAll('[data-t]')) el.textContent = T[el.dataset.t];

const $ = (id) => document.getElementById(id);

async function iceServers() {
  const res = await fetch('/api/ice-servers', { credentials: 'same-origin' });
  if (res.status === 401) throw new Error('signin');
  if (!res.ok) throw new Error(`HTTP ${res.status}`);
  return (await res.json()).iceServers;
}

/** `udp`, `tcp` or `tls`: how a TURN URL reaches the relay. */
function transportOf(url) {
  if (url.startsWith('turns:')) return 'tls';
  const m = /[?&]transport=(udp|tcp)/i.exec(url);
  return m ? m[1].toLowerCase() : 'udp';
}

/** The TURN servers split by transport, one URL each, UDP first. */
function byTransport(servers) {
  const out = new Map([['udp', []], ['tcp', []], ['tls', []]]);
  for (const sv of servers) {
    for (const url of [].concat(sv.urls)) {
      if (/^turns?:/.test(url)) out.get(transportOf(url)).push({ ...sv, urls: [url] });
    }
  }
  return [...out].filter(([, list]) => list.length);
}

/** Gathers every candidate of one peer connection, or stops after `ms`. */
function gather(servers, policy, ms = 8000) {
  return new Promise((resolve) => {
    const pc = new RTCPeerConnection({ iceServers: servers, iceTransportPolicy: policy });
    const found = [];
    const done = () => { pc.close(); resolve(found); };
    const timer = setTimeout(done, ms);
    pc.onicecandidate = (e) => {
      if (e.candidate && e.candidate.candidate) found.push(e.candidate);
      if (!e.candidate) { clearTimeout(timer); done(); }
    };
    pc.createDataChannel('check');
    pc.createOffer().then((o) => pc.setLocalDescription(o)).catch(() => { clearTimeout(timer); done(); });
  });
}

function typeOf(c) {
  return c.type || (/ typ (\w+)/.exec(c.candidate) || [])[1] || 'unknown';
}

function row(kind, yes) {
  const li = document.createElement('li');
  const name = document.createElement('strong');
  name.textContent = T[kind];
  const mark = document.createElement('span');
  mark.className = yes ? 'ok' : kind === 'host' || kind.startsWith('relay_') ? 'warn' : 'bad';
  mark.textContent = (yes ? '✓ ' : '✗ ') + T[kind + (yes ? 'Yes' : 'No')];
  li.append(name, ' ', mark);
  li.dataset.kind = kind;
  li.dataset.found = String(yes);
  return li;
}

async function run() {
  window.duetCheck = { done: false };
  $('status').textContent = T.running;
  $('results').replaceChildren();
  $('raw').textContent = '';
  try {
    const servers = await iceServers();
    // All candidates, then relay only: the second proves the relay answers on its own.
    // Then each TURN transport on its own: a network may block UDP and still allow TCP or TLS.
    const transports = byTransport(servers);
    const [all, relayOnly, ...each] = await Promise.all([
      gather(servers, 'all'),
      gather(servers, 'relay'),
      ...transports.map(([, list]) => gather(list, 'relay')),
    ]);
    const types = new Set([...all, ...relayOnly].map(typeOf));
    const result = { host: types.has('host'), srflx: types.has('srflx') || types.has('prflx'), relay: types.has('relay'), transports: {} };
    transports.forEach(([t], i) => { result.transports[t] = each[i].some((c) => typeOf(c) === 'relay'); });
    $('results').append(row('host', result.host), row('srflx', result.srflx), row('relay', result.relay));
    for (const [t, found] of Object.entries(result.transports)) $('results').append(row(`relay_${t}`, found));
    $('raw').textContent = [...all, ...relayOnly].map((c) => c.candidate).join('\n');
    const verdict = result.relay ? 'good' : result.host || result.srflx ? 'fair' : 'bad';
    $('status').textContent = T[verdict];
    $('status').className = `verdict ${verdict === 'good' ? 'ok' : verdict === 'fair' ? 'warn' : 'bad'}`;
    window.duetCheck = { done: true, verdict, ...result, candidates: [...all, ...relayOnly].map((c) => c.candidate) };
  } catch (err) {
    if (err.message === 'signin') {
      $('status').innerHTML = '';
      const a = document.createElement('a');
      a.href = '/';
      a.textContent = T.signin;
      $('status').append(a);
    } else {
      $('status').textContent = T.error + err.message;
    }
    window.duetCheck = { done: true, error: err.message };
  }
}

$('run').addEventListener('click', run);
run();
