"""The dashboard: server-rendered pages under ``/ui``, a little JavaScript, nothing fetched.

* ``/ui``: the families;
* ``/ui/families/{family}``: its versions with a live progress bar (rate and
  ETA, polled every second from ``/ui/families/{family}/progress``), checks
  with their values, the most frequent errors, the lag behind the source, and
  the alias history (who flipped what, forced or not);
* ``/ui/families/{family}/compare?q=&a=&b=``: one query, two versions side by
  side, each embedded with its own model, the sources both found marked;
* ``/ui/families/{family}/eval``: the golden-query scores per version as a
  table and a bar chart, the top-1 distance quantiles, and a distance
  threshold of the first version mapped onto the others.

A browser cannot send a bearer header by itself, so ``/ui/login`` takes the
token once and keeps it in an HttpOnly, SameSite=Strict cookie.
"""

from __future__ import annotations

import hmac
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from jinja2 import Environment, FileSystemLoader, select_autoescape

from ...build import runs
from ...build.run_model import Run
from ...errors import ReembedError
from ...read.evaluate import comparable_versions, evaluate, matching_threshold
from ...store import aliases, ledger, versions
from ...store.family import list_families
from ..progress import rate, run_processed, version_rows
from .readers import Readers

COOKIE = "reembed_token"
HERE = Path(__file__).parent
_env = Environment(loader=FileSystemLoader(HERE / "templates"),
                   autoescape=select_autoescape(["html"]))


def mount(app: FastAPI, token: str, readers: Readers) -> None:
    """Add the dashboard's routes to ``app``."""

    def authed(request: Request) -> bool:
        given = request.cookies.get(COOKIE, "")
        return bool(given) and hmac.compare_digest(given.encode(), token.encode())

    def page(request: Request, name: str, **values: Any) -> Response:
        if not authed(request):
            return RedirectResponse(f"/ui/login?next={quote(request.url.path)}", 303)
        return HTMLResponse(_env.get_template(name).render(**values))

    @app.get("/ui/login")
    def login_form(next: str = "/ui", failed: int = 0) -> Response:
        return HTMLResponse(_env.get_template("login.html").render(next=_local(next),
                                                                   failed=failed))

    @app.post("/ui/login")
    async def login(request: Request) -> Response:
        form = parse_qs((await request.body()).decode())
        given, target = form.get("token", [""])[0], _local(form.get("next", ["/ui"])[0])
        if not hmac.compare_digest(given.encode(), token.encode()):
            return RedirectResponse(f"/ui/login?failed=1&next={quote(target)}", 303)
        out = RedirectResponse(target, 303)
        out.set_cookie(COOKIE, given, httponly=True, samesite="strict")
        return out

    @app.get("/ui")
    def index(request: Request) -> Response:
        rows = [{"name": f.name, "collection": f.collection,
                 "active": aliases.active_version(f.name)} for f in list_families()]
        return page(request, "index.html", families=rows)

    @app.get("/ui/families/{family}")
    def family(request: Request, family: str) -> Response:
        return page(request, "family.html", family=family, versions=progress_rows(family),
                    history=_history(family))

    @app.get("/ui/families/{family}/progress")
    def progress(request: Request, family: str) -> Response:
        if not authed(request):
            return JSONResponse({"error": "log in at /ui/login"}, 401)
        return JSONResponse(progress_rows(family, brief=True))

    @app.get("/ui/families/{family}/compare")
    def compare(request: Request, family: str, q: str = "", a: str = "", b: str = "",
                k: int = 10) -> Response:
        labels = [v.version for v in versions.for_family(family)]
        result = _compare(readers, family, q, a, b, k) if q and a and b else None
        return page(request, "compare.html", family=family, labels=labels, q=q, a=a, b=b,
                    k=k, result=result)

    @app.get("/ui/families/{family}/eval")
    def eval_page(request: Request, family: str, k: int = 10) -> Response:
        return page(request, "eval.html", family=family, k=k, **_eval(family, k))


def progress_rows(family: str, brief: bool = False) -> list[dict[str, Any]]:
    """Each version's progress: settled of planned, rate, ETA. ``brief`` (the page's poll,
    every second) reads only counts and runs: no worker ping, no error summary."""
    if brief:
        return [_progress(rec, runs.current(rec), ledger.counts(rec.family, rec.version))
                for rec in versions.for_family(family)]
    return [{**row, **_progress_of_row(row)} for row in version_rows(family)]


def _progress(rec: versions.VersionRecord, run: Run | None, counts: ledger.Counts
              ) -> dict[str, Any]:
    running = run is not None and run.running
    return _figures(rec.version, rec.status, run.state if running and run else None,
                    counts.as_dict(), rate(run, run_processed(run, counts)) if running else None)


def _progress_of_row(row: dict[str, Any]) -> dict[str, Any]:
    return _figures(row["version"], row["status"], row["run"], row["counts"],
                    row.get("rate_recent") or row.get("rate"))


def _figures(version: str, status: str, run: str | None, c: dict[str, int],
             chunks_s: float | None) -> dict[str, Any]:
    settled = c["done"] + c["error"] + c["skipped"] + c["dead"]
    left = max(0, c["planned"] - settled)
    eta = left / chunks_s if chunks_s and left and run else None
    return {"version": version, "status": status, "run": run, "settled": settled,
            "planned": c["planned"], "rate": chunks_s or 0.0, "eta_s": eta,
            "percent": 100.0 * settled / c["planned"] if c["planned"] else 0.0}


def _history(family: str) -> list[dict[str, Any]]:
    alias = aliases.get(family) or {}
    return list(reversed(alias.get("history", [])))


def _compare(readers: Readers, family: str, q: str, a: str, b: str, k: int
             ) -> dict[str, Any]:
    reader = readers.of(family)
    try:
        left, right = reader.query(q, k, a), reader.query(q, k, b)
    except ReembedError as exc:
        return {"error": str(exc)}
    sa = [h.source_id or h.id for h in left]
    sb = [h.source_id or h.id for h in right]
    both = set(sa) & set(sb)
    return {"left": [(h, (h.source_id or h.id) in both) for h in left],
            "right": [(h, (h.source_id or h.id) in both) for h in right],
            "overlap": len(both) / k}


def _eval(family: str, k: int) -> dict[str, Any]:
    try:
        scores = evaluate(family, comparable_versions(family), k)
    except ReembedError as exc:
        return {"error": str(exc), "scores": []}
    base = scores[0]
    t = base.distance_quantiles().get("p50")
    mapped = [(s.version, matching_threshold(base.top1_distances, s.top1_distances, t))
              for s in scores[1:]] if t is not None else []
    return {"error": None, "scores": scores, "base": base.version, "threshold": t,
            "mapped": mapped, "now": datetime.now(UTC)}


def _local(path: str) -> str:
    """Only paths of this service (no open redirect to another site)."""
    return path if path.startswith("/ui") and not path.startswith("//") else "/ui"
