// A minimal event emitter: the app's modules talk through these instead of reaching into each other.

export class Emitter {
  #handlers = new Map();

  /** Subscribes; returns the function that unsubscribes. */
  on(event, fn) {
    if (!this.#handlers.has(event)) this.#handlers.set(event, new Set());
    this.#handlers.get(event).add(fn);
    return () => this.#handlers.get(event)?.delete(fn);
  }

  emit(event, ...args) {
    for (const fn of [...(this.#handlers.get(event) || [])]) {
      try {
        fn(...args);
      } catch (e) {
        // One broken listener must not stop the others; keep it visible for debugging.
        console.warn(`listener of ${event} failed`, e);
      }
    }
  }
}
