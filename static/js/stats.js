// Link statistics from RTCPeerConnection.getStats, reduced to what the quality indicator shows
// and what `Call/Report` carries: {iceState, localCandidateType, remoteCandidateType, rttMs,
// bitrateKbps, packetLoss}. Bitrate and loss are over the interval since the previous sample.

export class LinkMeter {
  #prev = null;
  last = null;

  /** Samples the connection; resolves with the report's `stats` object. */
  async sample(pc) {
    const report = await pc.getStats();
    let pair = null;
    const byId = new Map();
    report.forEach((s) => byId.set(s.id, s));
    report.forEach((s) => {
      if (s.type === 'transport' && s.selectedCandidatePairId) pair = byId.get(s.selectedCandidatePairId) || pair;
    });
    if (!pair) {
      report.forEach((s) => {
        if (s.type === 'candidate-pair' && s.nominated && s.state === 'succeeded') pair = s;
      });
    }
    let bytesIn = 0;
    let bytesOut = 0;
    let lost = 0;
    let received = 0;
    report.forEach((s) => {
      if (s.type === 'inbound-rtp') {
        bytesIn += s.bytesReceived || 0;
        lost += Math.max(0, s.packetsLost || 0);
        received += s.packetsReceived || 0;
      } else if (s.type === 'outbound-rtp') {
        bytesOut += s.bytesSent || 0;
      }
    });
    const now = performance.now();
    const prev = this.#prev;
    let bitrateKbps = null;
    let packetLoss = null;
    if (prev) {
      const secs = (now - prev.at) / 1000;
      // Media in both directions: what this side's link carries.
      if (secs > 0) bitrateKbps = Math.max(0, Math.round(((bytesIn + bytesOut - prev.bytes) * 8) / 1000 / secs));
      const dLost = lost - prev.lost;
      const dTotal = dLost + (received - prev.received);
      packetLoss = dTotal > 0 ? Math.max(0, Math.round((dLost / dTotal) * 1000) / 1000) : 0;
    }
    this.#prev = { at: now, bytes: bytesIn + bytesOut, lost, received };
    const local = pair && byId.get(pair.localCandidateId);
    const remote = pair && byId.get(pair.remoteCandidateId);
    const rtt = pair && typeof pair.currentRoundTripTime === 'number' ? Math.round(pair.currentRoundTripTime * 1000) : null;
    this.last = {
      iceState: pc.iceConnectionState,
      localCandidateType: local ? local.candidateType : null,
      remoteCandidateType: remote ? remote.candidateType : null,
      rttMs: rtt,
      bitrateKbps,
      packetLoss,
    };
    return this.last;
  }

  /** The connection was replaced: intervals restart. */
  reset() {
    this.#prev = null;
  }
}

/** `good`, `fair`, `poor` or `unknown`, from a stats object. */
export function qualityOf(stats) {
  if (!stats) return 'unknown';
  if (stats.iceState !== 'connected' && stats.iceState !== 'completed') {
    return stats.iceState === 'checking' || stats.iceState === 'new' ? 'unknown' : 'poor';
  }
  const rtt = stats.rttMs ?? 0;
  const loss = stats.packetLoss ?? 0;
  if (rtt > 400 || loss > 0.08) return 'poor';
  if (rtt > 150 || loss > 0.02) return 'fair';
  return 'good';
}
