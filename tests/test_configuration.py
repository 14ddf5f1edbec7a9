"""README and .env.example must describe every environment variable the code reads."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ENV_CALL = re.compile(r"""\benv(?:_bool|_list)?\(\s*["']([A-Z][A-Z0-9_]+)["']""")
GETENV = re.compile(r"""os\.environ(?:\.get)?[\[(]\s*["']([A-Z][A-Z0-9_]+)["']""")
IGNORED = {"DJANGO_SETTINGS_MODULE", "DJANGO_ALLOW_ASYNC_UNSAFE"}
# Read by programs running inside pods (the seeded demo app), not by the console.
POD_SIDE = re.compile(r"^(RUNPOD_|DEMO_DATA$)")


def variables_read_by_code() -> set[str]:
    names: set[str] = set()
    for path in ROOT.glob("*/**/*.py"):
        if ".venv" in path.parts or "tests" in path.parts or "bench" in path.parts:
            continue
        text = path.read_text()
        names |= set(ENV_CALL.findall(text)) | set(GETENV.findall(text))
    return {name for name in names - IGNORED if not POD_SIDE.match(name)}


def documented(path: Path) -> set[str]:
    return set(re.findall(r"\b([A-Z][A-Z0-9_]{2,})\b", path.read_text()))


def test_env_example_lists_every_variable():
    missing = variables_read_by_code() - documented(ROOT / ".env.example")
    assert not missing, f"Add to .env.example: {sorted(missing)}"


def test_readme_lists_every_variable():
    missing = variables_read_by_code() - documented(ROOT / "README.md")
    assert not missing, f"Document in README.md: {sorted(missing)}"
