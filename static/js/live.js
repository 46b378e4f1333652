// One WebSocket to /api/v1/watch for the env on screen; reconnects and resubscribes with
// after = the last version seen, so a publish made while disconnected is not missed.

const MIN_DELAY = 1000;
const MAX_DELAY = 10000;

class Live {
  constructor() {
    this.socket = null;
    this.sub = null; // { app, env, after, onRelease }
    this.delay = MIN_DELAY;
    this.timer = null;
    this.listeners = new Set();
    this.state = "idle";
  }

  /** Called with "live", "connecting" or "offline" whenever the channel changes. */
  onState(listener) {
    this.listeners.add(listener);
    listener(this.state);
    return () => this.listeners.delete(listener);
  }

  setState(state) {
    this.state = state;
    for (const listener of this.listeners) listener(state);
  }

  /** Watch one env; onRelease(frame) runs for every version above after. Returns a stop function. */
  watch(app, env, after, onRelease) {
    this.unwatch();
    const sub = { app, env, after: after ?? 0, onRelease };
    this.sub = sub;
    if (this.socket && this.socket.readyState === WebSocket.OPEN) {
      this.send({ op: "subscribe", app, env, after: sub.after });
    } else {
      this.connect();
    }
    return () => {
      if (this.sub === sub) this.unwatch();
    };
  }

  /** Raise the version already shown (after a publish made on this page). */
  seen(app, env, version) {
    if (this.sub && this.sub.app === app && this.sub.env === env && version > this.sub.after) {
      this.sub.after = version;
    }
  }

  unwatch() {
    const sub = this.sub;
    this.sub = null;
    if (sub && this.socket && this.socket.readyState === WebSocket.OPEN) {
      this.send({ op: "unsubscribe", app: sub.app, env: sub.env });
    }
  }

  send(message) {
    this.socket.send(JSON.stringify(message));
  }

  connect() {
    if (this.socket && this.socket.readyState <= WebSocket.OPEN) return;
    clearTimeout(this.timer);
    this.setState("connecting");
    const scheme = window.location.protocol === "https:" ? "wss" : "ws";
    const socket = new WebSocket(`${scheme}://${window.location.host}/api/v1/watch`);
    this.socket = socket;
    socket.addEventListener("open", () => {
      this.delay = MIN_DELAY;
      this.setState("live");
      if (this.sub)
        this.send({ op: "subscribe", app: this.sub.app, env: this.sub.env, after: this.sub.after });
    });
    socket.addEventListener("message", (event) => this.receive(event.data));
    socket.addEventListener("close", () => {
      if (this.socket !== socket) return;
      this.socket = null;
      this.setState("offline");
      if (this.sub) {
        this.timer = setTimeout(() => this.connect(), this.delay);
        this.delay = Math.min(this.delay * 2, MAX_DELAY);
      }
    });
  }

  receive(data) {
    let frame;
    try {
      frame = JSON.parse(data);
    } catch {
      return;
    }
    const sub = this.sub;
    if (frame.type === "release" && sub && frame.app === sub.app && frame.env === sub.env) {
      if (frame.version > sub.after) {
        sub.after = frame.version;
        sub.onRelease(frame);
      }
    } else if (frame.type === "error") {
      console.warn("watch:", frame.code, frame.message);
    }
  }
}

export const live = new Live();
