"""A hostile pod for the proxy's origin tests: a stdlib HTTP server (the host's python3 inside
the sandbox) whose page attacks the console from the browser, and whose responses try to set
cookies where they must not land.

  GET /               an HTML page; its script reads document.cookie, tries to read the
                      console's team page, posts API-key forms to the console (fetch and a real
                      <form>), tosses a cookie onto Domain=<TOSS_DOMAIN>, reads /own.json from
                      its own origin, and writes what happened as JSON into <pre id=report>
  GET /own.json       {"own": true}, for the page's same-origin fetch
  GET /set-cookies?domain=D   Set-Cookie headers with and without Domain=D, named like the
                      console's and the proxy's cookies, plus Clear-Site-Data and HSTS
  anything else       a JSON echo of the path and the request's Cookie header
CONSOLE (the console's URL), TEAM (its slug) and TOSS_DOMAIN come from the pod's env.
"""

from __future__ import annotations

import json

from pods import services
from pods.models import Pod
from tests.pods.connect_helpers import wait_listening
from tests.pods.factories import deploy_request, fund

PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>Hostile pod</title></head>
<body>
<h1 id="own">Hello from a hostile pod</h1>
<pre id="report">pending</pre>
<form id="key-form" method="post" target="sink">
  <input name="name" value="stolen-by-form"><input name="permission" value="read_write">
</form>
<iframe name="sink" title="sink"></iframe>
<script>
const consoleUrl = "__CONSOLE__", team = "__TEAM__", tossDomain = "__TOSS__";
const keys = consoleUrl + "/t/" + team + "/settings/api-keys/";
const report = {script: "ran", cookies: document.cookie};
document.cookie = "tossed_by_script=1; domain=" + tossDomain + "; path=/";
async function attempt(name, run) {
  try { report[name] = await run(); } catch (error) { report[name] = "blocked: " + error.name; }
}
(async () => {
  await attempt("team_page", async () => {
    const reply = await fetch(consoleUrl + "/t/" + team + "/team/", {credentials: "include"});
    return "read " + reply.status + ": " + (await reply.text()).slice(0, 200);
  });
  await attempt("post_fetch", async () => {
    const body = new URLSearchParams({name: "stolen-by-fetch", permission: "read_write"});
    const options = {method: "POST", credentials: "include", mode: "no-cors", body};
    const reply = await fetch(keys, options);
    return "sent, answer " + reply.type;
  });
  await attempt("own_origin", async () => JSON.stringify(await (await fetch("/own.json")).json()));
  const form = document.getElementById("key-form");
  form.action = keys;
  form.submit();
  report.form = "submitted";
  document.getElementById("report").textContent = JSON.stringify(report);
})();
</script>
</body></html>
"""

SERVER = r"""python3 -u - <<'PY'
import http.server, json, os, urllib.parse
PAGE = json.loads(os.environ["POD_PAGE"])
class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def log_message(self, *args):
        pass
    def reply(self, body, kind, extra=()):
        self.send_response(200)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        for name, value in extra:
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)
    def do_GET(self):
        url = urllib.parse.urlsplit(self.path)
        if url.path == "/":
            page = PAGE.replace("__CONSOLE__", os.environ["CONSOLE"])
            page = page.replace("__TEAM__", os.environ["TEAM"])
            page = page.replace("__TOSS__", os.environ["TOSS_DOMAIN"])
            return self.reply(page.encode(), "text/html; charset=utf-8")
        if url.path == "/own.json":
            return self.reply(b'{"own": true}', "application/json")
        if url.path == "/set-cookies":
            domain = urllib.parse.parse_qs(url.query).get("domain", ["localhost"])[0]
            extra = [
                ("Set-Cookie", "pod_plain=1; Path=/"),
                ("Set-Cookie", f"pod_domain=1; Domain={domain}; Path=/; HttpOnly"),
                ("Set-Cookie", f"pod_upper=1; path=/; DOMAIN=.{domain}"),
                ("Set-Cookie", f"sessionid=planted; Domain={domain}; Path=/"),
                ("Set-Cookie", "csrftoken=planted; Path=/"),
                ("Set-Cookie", "console_proxy=forged; Path=/"),
                ("Set-Cookie", "__Host-console_proxy=forged; Path=/; Secure"),
                ("Clear-Site-Data", '"cookies", "storage"'),
                ("Strict-Transport-Security", "max-age=31536000; includeSubDomains"),
            ]
            return self.reply(b"{}", "application/json", extra)
        seen = {"path": self.path, "cookie": self.headers.get("Cookie", "")}
        self.reply(json.dumps(seen).encode(), "application/json")
port = int(os.environ["PORT"])
print(f"hostile pod on {port}", flush=True)
http.server.ThreadingHTTPServer(("0.0.0.0", port), Handler).serve_forever()
PY"""


def hostile_pod(team, user, parts, *, console: str, toss_domain: str = "localhost") -> Pod:
    """A running team-only pod of `team`, deployed by `user`, serving SERVER on HTTP port 8080."""
    fund(team)
    env = [
        {"key": "POD_PAGE", "value": json.dumps(PAGE)},
        {"key": "CONSOLE", "value": console},
        {"key": "TEAM", "value": team.slug},
        {"key": "TOSS_DOMAIN", "value": toss_domain},
    ]
    request = deploy_request(
        parts["a40"], start_command=SERVER, ports=[{"port": 8080, "protocol": "http"}], env=env
    )
    pod = services.deploy_pod(actor=user, team=team, request=request)
    pod.refresh_from_db()
    assert pod.status == Pod.Status.RUNNING, pod.status_reason
    wait_listening(pod, 8080)
    return pod
