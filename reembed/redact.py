"""Secrets out of anything reembed prints or stores: URI passwords and secret parameters.

Connection strings carry credentials (``mongodb://user:password@host``), and
error messages, ``doctor`` lines and logs quote them. Every such text goes
through :func:`redact` first, so a secret is shown as ``***`` and never copied
into a terminal, a log file or a Mongo document.
"""

from __future__ import annotations

import re

_USERINFO = re.compile(r"(?P<head>[a-zA-Z][a-zA-Z0-9+.-]*://[^:/@\s]*):\S+@")
_SECRET_PARAM = re.compile(
    r"(?i)\b(?P<key>password|passwd|pwd|token|secret|api[_-]?key)=[^&\s'\"]+")


def redact(text: str) -> str:
    """``text`` with every URI password (``user:password@``) and secret parameter as ``***``."""
    return _SECRET_PARAM.sub(r"\g<key>=***", _USERINFO.sub(r"\g<head>:***@", text))
