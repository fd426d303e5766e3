// The user's preferences on this device, kept in localStorage.

const KEY = 'duet.settings';

const defaults = {
  hideAddress: false, // relay-only calls (iceTransportPolicy "relay")
  cameraId: null,
  micId: null,
  notifyDismissed: false,
};

function load() {
  try {
    return { ...defaults, ...JSON.parse(localStorage.getItem(KEY) || '{}') };
  } catch {
    return { ...defaults };
  }
}

export const settings = load();

export function saveSetting(name, value) {
  settings[name] = value;
  try {
    localStorage.setItem(KEY, JSON.stringify(settings));
  } catch {
    // Private mode with no storage: the setting lasts for this page.
  }
}
