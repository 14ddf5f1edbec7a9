// The web terminal: xterm.js over a websocket to a shell in the pod. Output arrives as binary
// frames, events as JSON text; keystrokes and resizes go out as JSON text.
(function () {
  "use strict";
  const root = document.querySelector("[data-terminal]");
  if (!root) return;
  const state = document.getElementById("terminal-state");
  const reconnect = document.getElementById("terminal-reconnect");
  const term = new Terminal({
    cursorBlink: true,
    convertEol: false,
    fontFamily: "ui-monospace, SFMono-Regular, Menlo, Consolas, monospace",
    fontSize: 14,
    scrollback: 5000,
  });
  const fit = new FitAddon.FitAddon();
  term.loadAddon(fit);
  term.open(document.getElementById("terminal"));
  fit.fit();
  let socket = null;

  function show(text, style) {
    state.textContent = text;
    state.className = "badge text-bg-" + style;
  }

  function send(message) {
    if (socket && socket.readyState === WebSocket.OPEN) socket.send(JSON.stringify(message));
  }

  function resize() {
    fit.fit();
    send({ type: "resize", cols: term.cols, rows: term.rows });
  }

  function connect() {
    const scheme = window.location.protocol === "https:" ? "wss://" : "ws://";
    socket = new WebSocket(scheme + window.location.host + root.dataset.terminal);
    socket.binaryType = "arraybuffer";
    reconnect.hidden = true;
    show("connecting…", "light border");
    socket.onopen = () => { show("connected", "success"); resize(); term.focus(); };
    socket.onmessage = (event) => {
      if (typeof event.data !== "string") { term.write(new Uint8Array(event.data)); return; }
      const message = JSON.parse(event.data);
      term.write("\r\n\x1b[33m[console] " + message.message + "\x1b[0m\r\n");
    };
    socket.onclose = (event) => {
      show(event.code === 4403 ? "not allowed" : "disconnected", event.code === 4403 ? "danger" : "secondary");
      reconnect.hidden = event.code === 4403;
    };
  }

  // Ctrl+C copies when text is selected (as in most terminal apps); without a selection it
  // still interrupts. Pasting is the browser's own paste event, which xterm.js handles.
  term.attachCustomKeyEventHandler((event) => {
    const copy = event.type === "keydown" && event.ctrlKey && !event.altKey && event.code === "KeyC";
    if (copy && term.hasSelection()) {
      navigator.clipboard.writeText(term.getSelection());
      term.clearSelection();
      event.preventDefault();
      return false;
    }
    return true;
  });
  term.onData((data) => send({ type: "input", data: data }));
  window.addEventListener("resize", () => resize());
  reconnect.addEventListener("click", () => { term.write("\r\n"); connect(); });
  connect();
})();
