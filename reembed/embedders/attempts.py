"""How one HTTP attempt of a remote embedder ends when it brings no vectors.

Shared by the drivers that call a server (``ollama``, ``openai``): each sorts
a failed attempt into one of these, and its retry loop treats them apart.
"""

from __future__ import annotations


class Failed(Exception):
    """An attempt failed in a way that a later attempt may not (counts as a retry)."""


class Throttled(Exception):
    """The server answered 429: wait ``wait_s`` (None: it did not say) and try again.

    Not a failure: it is never counted against the call's retries.
    """

    def __init__(self, wait_s: float | None) -> None:
        super().__init__(f"throttled (wait {wait_s})")
        self.wait_s = wait_s
