"""Checks of what users type that several entry points share (wizard, templates, the API).

Environment variable names: a pod's variables are set inside the pod only, and the runtimes
start every host-side helper (bubblewrap, the supervisor shim, nsenter, the log reader) with a
fixed environment. Names whose only use is to make a program run code or read files it did
not ship with are refused where they are entered as well, so that a helper that ever did
inherit a pod's environment could not be turned against the host, and so that nobody stores a
template that would try. The list, by family:

- the dynamic loader (`LD_*`: LD_PRELOAD, LD_LIBRARY_PATH, LD_AUDIT, ...) and the rest of glibc's
  own list of variables it ignores across a privilege boundary (sysdeps/generic/unsecvars.h:
  GCONV_PATH, GLIBC_TUNABLES, ...), which reach every dynamically linked program, C helpers
  included; TMPDIR from that list stays allowed: pods set it daily, and it only picks a folder;
- shells: BASH_ENV and ENV (a file every non-interactive bash or sh runs first), exported
  functions (BASH_FUNC_*), SHELLOPTS/BASHOPTS (xtrace and friends), PS4 (expanded, so run, on
  every traced line), PROMPT_COMMAND, IFS (re-splits every unquoted word of a script);
- Python, the language of the console's own host-side shim: PYTHONSTARTUP, PYTHONINSPECT,
  PYTHONHOME (replaces the standard library), PYTHONUSERBASE (its .pth files run at start-up),
  PYTHONBREAKPOINT (breakpoint() imports and calls any name).

PATH and PYTHONPATH stay allowed: ordinary workloads need them, and they only change what the
pod itself runs.
"""

from __future__ import annotations

import re

from django.core.exceptions import ValidationError

from pods.lifecycle import CONSOLE_ENV

ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
MAX_ENV_NAME = 100

LOADER = "it makes programs load code or files of the pod's choosing"
SHELL = "it makes shell scripts run commands of the pod's choosing"
PYTHON = "it makes Python run code of the pod's choosing"

REFUSED_PREFIXES = {"LD_": LOADER, "BASH_FUNC_": SHELL}
GLIBC_UNSECURE = (
    "GCONV_PATH",
    "GETCONF_DIR",
    "GLIBC_TUNABLES",
    "HOSTALIASES",
    "LOCALDOMAIN",
    "LOCPATH",
    "MALLOC_TRACE",
    "NIS_PATH",
    "NLSPATH",
    "RESOLV_HOST_CONF",
    "RES_OPTIONS",
    "TZDIR",
)
SHELL_HOOKS = ("BASH_ENV", "ENV", "SHELLOPTS", "BASHOPTS", "PS4", "PROMPT_COMMAND", "IFS")
PYTHON_HOOKS = ("PYTHONSTARTUP", "PYTHONINSPECT", "PYTHONHOME", "PYTHONUSERBASE")
PYTHON_HOOKS += ("PYTHONBREAKPOINT",)
REFUSED_NAMES = {
    **dict.fromkeys(GLIBC_UNSECURE, LOADER),
    **dict.fromkeys(SHELL_HOOKS, SHELL),
    **dict.fromkeys(PYTHON_HOOKS, PYTHON),
}


def refusal_reason(name: str) -> str | None:
    """Why a pod may not set `name`, or None when it may."""
    if name in REFUSED_NAMES:
        return REFUSED_NAMES[name]
    for prefix, reason in REFUSED_PREFIXES.items():
        if name.startswith(prefix):
            return reason
    return None


def validate_env_name(name: str) -> None:
    """Raise ValidationError with a message naming the variable when a pod may not set it."""
    if len(name) > MAX_ENV_NAME or not ENV_NAME.fullmatch(name):
        raise ValidationError(
            "A variable name is letters, digits and underscores, not starting with a digit "
            f"(at most {MAX_ENV_NAME}).",
            code="env_name",
        )
    if name in CONSOLE_ENV or name.startswith("RUNPOD_TCP_PORT_"):
        raise ValidationError(f"{name} is set by the console.", code="env_reserved")
    reason = refusal_reason(name)
    if reason:
        raise ValidationError(f"{name} is not allowed: {reason}.", code="env_refused")
