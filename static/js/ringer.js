// Ring tones made with WebAudio (no sound files). Browsers only let audio start after the user
// has interacted with the page, so the context is created on the first click or key press and
// kept for later calls.

let ctx = null;

function ensureContext() {
  if (!ctx) {
    const AC = window.AudioContext || window.webkitAudioContext;
    if (!AC) return null;
    ctx = new AC();
  }
  if (ctx.state === 'suspended') ctx.resume().catch(() => {});
  return ctx;
}

/** Creates the audio context on the first user gesture, while the browser allows it. */
export function unlockOnGesture() {
  const unlock = () => {
    ensureContext();
    window.removeEventListener('pointerdown', unlock, true);
    window.removeEventListener('keydown', unlock, true);
  };
  window.addEventListener('pointerdown', unlock, true);
  window.addEventListener('keydown', unlock, true);
}

let stopCurrent = null;

/** One beep pair at `at` seconds of the context clock. */
function tone(ac, out, at, freqs, length, level) {
  const gain = ac.createGain();
  gain.gain.setValueAtTime(0, at);
  gain.gain.linearRampToValueAtTime(level, at + 0.02);
  gain.gain.setValueAtTime(level, at + length - 0.05);
  gain.gain.linearRampToValueAtTime(0, at + length);
  gain.connect(out);
  for (const f of freqs) {
    const osc = ac.createOscillator();
    osc.type = 'sine';
    osc.frequency.value = f;
    osc.connect(gain);
    osc.start(at);
    osc.stop(at + length + 0.01);
  }
}

/**
 * Plays a repeating pattern until `stopRinging`.
 * `incoming`: a bright double chirp every 2 s. `outgoing`: a soft ring-back tone every 4 s.
 */
export function startRinging(kind) {
  stopRinging();
  const ac = ensureContext();
  if (!ac) return;
  const out = ac.createGain();
  out.gain.value = 1;
  out.connect(ac.destination);
  const cycle = kind === 'incoming' ? 2 : 4;
  const schedule = (at) => {
    if (kind === 'incoming') {
      tone(ac, out, at, [659.25, 880], 0.35, 0.18);
      tone(ac, out, at + 0.5, [659.25, 880], 0.35, 0.18);
    } else {
      tone(ac, out, at, [440, 480], 1.5, 0.06);
    }
  };
  let next = ac.currentTime + 0.05;
  schedule(next);
  const timer = setInterval(() => {
    next += cycle;
    schedule(next);
  }, cycle * 1000);
  stopCurrent = () => {
    clearInterval(timer);
    out.gain.setValueAtTime(0, ac.currentTime);
    setTimeout(() => out.disconnect(), 100);
  };
}

export function stopRinging() {
  if (stopCurrent) {
    stopCurrent();
    stopCurrent = null;
  }
}
