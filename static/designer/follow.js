// Follows a websocket of this site (ws/runs/<id>/, ws/workflows/<id>/): each JSON message goes to
// onMessage; while the socket is away, poll() runs every pollMs and the socket reconnects with a
// doubling back-off. A close with 4401 (not signed in) or 4404 (not found) is final: no reconnect.
// following() says whether there is still anything to follow: when it turns false there is no
// more connecting and the polling stops.

export class Follower {
  constructor(path, {
    onMessage, poll, onOpen = () => {}, onClose = () => {}, following = () => true,
    pollMs = 3000, retryMs = 1000, maxRetryMs = 30000, pollAfterRefusal = false,
  }) {
    Object.assign(this, { path, onMessage, poll, onOpen, onClose, following, pollMs, retryMs, maxRetryMs, pollAfterRefusal });
    this.retry = retryMs;
    this.socket = null;
    this.poller = null;
    this.closed = false;
  }

  start() {
    if (this.closed || !this.following()) return this;
    const proto = location.protocol === "https:" ? "wss" : "ws";
    let socket;
    try {
      socket = new WebSocket(`${proto}://${location.host}${this.path}`);
    } catch {
      this._poll();
      return this;
    }
    this.socket = socket;
    socket.onopen = () => { this.retry = this.retryMs; this._stopPolling(); this.onOpen(); };
    socket.onmessage = (e) => {
      let msg;
      try { msg = JSON.parse(e.data); } catch { return; }
      this.onMessage(msg);
    };
    socket.onclose = (e) => {
      this.socket = null;
      this.onClose();
      const going = !this.closed && this.following();
      if (!going || e.code === 4401 || e.code === 4404) {
        if (going && this.pollAfterRefusal) this._poll();
        return;
      }
      this._poll();
      setTimeout(() => this.start(), this.retry);
      this.retry = Math.min(this.retry * 2, this.maxRetryMs);
    };
    return this;
  }

  _poll() {
    if (this.poller || this.closed) return;
    this.poller = setInterval(() => {
      if (!this.following()) { this._stopPolling(); return; }
      this.poll();
    }, this.pollMs);
  }

  _stopPolling() {
    clearInterval(this.poller);
    this.poller = null;
  }

  close() {
    this.closed = true;
    this._stopPolling();
    if (this.socket) { try { this.socket.close(); } catch { /* already closed */ } }
    this.socket = null;
  }
}
