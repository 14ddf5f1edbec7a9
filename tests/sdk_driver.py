"""The official runpod SDK in a child process, for the compatibility suites: the child imports
`runpod` after RUNPOD_API_BASE_URL / RUNPOD_ENDPOINT_BASE_URL are set (as README's recipe says),
with an empty HOME (no ~/.runpod/config.toml), evaluates one SDK expression per line (`name :=
...` keeps a value for later lines) and answers each in JSON."""

import json
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager

DRIVER = """
import json, os, sys
import runpod
runpod.api_key = os.environ["SDK_TEST_KEY"]
names = {"runpod": runpod}
for line in sys.stdin:
    try:
        answer = {"ok": eval(line, names)}
    except Exception as error:
        answer = {"error": type(error).__name__, "message": str(error)}
    print(json.dumps(answer, default=str), flush=True)
"""


class Sdk:
    def __init__(self, process: subprocess.Popen) -> None:
        self.process = process

    def call(self, expression: str):
        """The expression's value, or raises AssertionError naming the SDK's exception."""
        answer = self.answer(expression)
        assert "ok" in answer, answer
        return answer["ok"]

    def answer(self, expression: str) -> dict:
        self.process.stdin.write(expression + "\n")
        self.process.stdin.flush()
        line = self.process.stdout.readline()
        assert line, "the SDK process ended"
        return json.loads(line)


@contextmanager
def sdk_process(base_url: str, key: str, env: dict[str, str]) -> Iterator[Sdk]:
    """An SDK child pointed at `base_url` with API key `key`; `env` is the rest of its
    environment (PATH and HOME at least)."""
    env = {
        **env,
        "SDK_TEST_KEY": key,
        "RUNPOD_API_BASE_URL": base_url,
        "RUNPOD_ENDPOINT_BASE_URL": f"{base_url}/v2",
    }
    process = subprocess.Popen(
        [sys.executable, "-c", DRIVER],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        yield Sdk(process)
    finally:
        process.stdin.close()
        process.wait(timeout=10)
