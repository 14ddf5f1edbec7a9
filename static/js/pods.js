// Live pods pages. The server pushes {"type": "status"} when a pod changes; the page then
// re-fetches its server-rendered fragment with htmx. The pod page also receives its log.
(function () {
  "use strict";

  function socketUrl(path) {
    const scheme = window.location.protocol === "https:" ? "wss://" : "ws://";
    return scheme + window.location.host + path;
  }

  function refresh(root) {
    htmx.ajax("GET", root.dataset.refreshUrl, { target: root.dataset.target, swap: "outerHTML" });
  }

  // Keeps `root` live. On every (re)connect it re-fetches root first: a change pushed between
  // the page's render and the socket's open would otherwise never reach it. Reconnects with a
  // growing delay, so a console restart does not leave the page stale.
  function connect(path, root, handlers, delay) {
    const socket = new WebSocket(socketUrl(path));
    socket.onopen = () => {
      handlers.open && handlers.open(socket);
      refresh(root);
    };
    socket.onmessage = (event) => handlers.message(JSON.parse(event.data));
    socket.onclose = (event) => {
      handlers.close && handlers.close();
      if (event.code === 4403) return; // refused: no access
      const next = Math.min((delay || 500) * 2, 10000);
      setTimeout(() => connect(path, root, handlers, next), next);
    };
  }

  const list = document.querySelector("[data-pods-live]");
  if (list) {
    connect("/ws/t/" + list.dataset.podsLive + "/pods/", list, {
      message: (data) => { if (data.type === "status") refresh(list); },
    });
  }

  const pod = document.querySelector("[data-pod-live]");
  if (pod) {
    const panel = document.getElementById("log-panel");
    const badge = document.getElementById("log-live");
    let cursor = pod.dataset.logCursor || "0";
    panel.scrollTop = panel.scrollHeight;
    connect("/ws/t/" + pod.dataset.team + "/pods/" + pod.dataset.podLive + "/", pod, {
      open: (socket) => {
        socket.send(JSON.stringify({ cursor: cursor }));
        badge.textContent = "live";
        badge.className = "ms-2 badge text-bg-success";
      },
      close: () => { badge.textContent = "reconnecting…"; badge.className = "ms-2 badge text-bg-warning"; },
      message: (data) => {
        if (data.type === "status") refresh(pod);
        if (data.type === "log") {
          const atBottom = panel.scrollTop + panel.clientHeight >= panel.scrollHeight - 20;
          panel.textContent += data.text;
          cursor = data.cursor;
          if (atBottom) panel.scrollTop = panel.scrollHeight;
        }
      },
    });
  }
})();
