"""Where a build's CPU goes: CPU seconds of every stack process during one build.

    .venv/bin/python -m bench.profile_build --docs 4000 [--driver minilm|naive] [--py-spy]

One stack (Redis, the wire server, ``chroma run``, the control and cpu
workers), one warm-up build, then one timed build of ``--docs`` documents. The
CPU time (user + system, children included) of each process over the build
comes from ``/proc``, with the host's busy share over the same window: on a
host whose cores are all busy, the time the servers spend storing vectors and
ledger rows is time the model does not embed, and no overlap can hide it.
With ``--py-spy``, the cpu worker's Python stacks are recorded during the
build (``py-spy record --subprocesses``) and the top frames printed.
"""

from __future__ import annotations

import argparse
import collections
import os
import signal
import subprocess
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from bench.build_rate import corpus, new_family
from bench.common import MINILM_EMBED, bench_stack, build, say, summary_line

NAIVE = {"driver": "naive"}
TICK = os.sysconf("SC_CLK_TCK")


def cpu_s(pid: int) -> float:
    """User + system seconds of ``pid`` and its waited-for children (0 if gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return sum(int(f) for f in fields[11:15]) / TICK


def tree(pid: int) -> list[int]:
    """``pid`` and its live descendants."""
    out = [pid]
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            out += [c for k in (task / "children").read_text().split() for c in tree(int(k))]
        except OSError:
            continue
    return out


def host_ticks() -> tuple[int, int]:
    """(busy, total) jiffies of the host so far."""
    f = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:8]]
    return sum(f) - f[3] - f[4], sum(f)


class Sampler:
    """Per-process CPU seconds between :meth:`start` and :meth:`stop` (pids sampled
    every 0.5 s, so a pool child that exits is still counted up to its last sample)."""

    def __init__(self, roots: dict[str, int]) -> None:
        self.roots = roots
        self.first: dict[int, float] = {}
        self.last: dict[int, float] = {}
        self.owner: dict[int, str] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _sample(self) -> None:
        for name, root in self.roots.items():
            for pid in tree(root):
                now = cpu_s(pid)
                self.owner.setdefault(pid, name)
                self.first.setdefault(pid, now)
                self.last[pid] = max(now, self.last.get(pid, 0.0))

    def _run(self) -> None:
        while not self._stop.wait(0.5):
            self._sample()

    def start(self) -> None:
        self._sample()
        self.ticks = host_ticks()
        self._thread.start()

    def stop(self) -> tuple[dict[str, float], float]:
        self._sample()
        self._stop.set()
        busy, total = (b - a for a, b in zip(self.ticks, host_ticks(), strict=True))
        out: dict[str, float] = collections.defaultdict(float)
        for pid, t in self.last.items():
            out[self.owner[pid]] += t - self.first[pid]
        return dict(out), busy / total if total else 0.0


def roots_of(st: Any) -> dict[str, int]:
    state = st.state()
    out = {k: int(v["pid"]) for k, v in state.items()
           if isinstance(v, dict) and v.get("pid") and k != "workers"}
    out.update({f"worker {k}": int(v["pid"]) for k, v in (state.get("workers") or {}).items()})
    return out


def py_spy(pid: int, seconds: int, out: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen([str(Path(".venv/bin/py-spy")), "record", "--pid", str(pid),
                             "--subprocesses", "--duration", str(seconds), "--format", "raw",
                             "--output", str(out), "--nonblocking"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def top_frames(raw: Path, n: int = 12) -> list[tuple[str, float]]:
    """The leaf frames that hold most samples of a py-spy raw (collapsed) file."""
    counts: collections.Counter[str] = collections.Counter()
    for line in raw.read_text().splitlines():
        stack, _, k = line.rpartition(" ")
        counts[stack.split(";")[-1]] += int(k)
    total = sum(counts.values()) or 1
    return [(frame, c / total) for frame, c in counts.most_common(n)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--docs", type=int, default=4000)
    ap.add_argument("--driver", choices=("minilm", "naive"), default="minilm")
    ap.add_argument("--py-spy", action="store_true")
    ap.add_argument("--dir", default=None)
    args = ap.parse_args()
    embed = MINILM_EMBED if args.driver == "minilm" else NAIVE
    with bench_stack(args.dir) as st:
        warm = new_family("profwarm", corpus(512))
        build(warm.name, "warm", embed)
        fam = new_family("prof", corpus(args.docs))
        roots = roots_of(st)
        sampler = Sampler(roots)
        spy = None
        if args.py_spy:
            raw = Path(tempfile.gettempdir()) / f"profile-build-cpu-worker-{os.getpid()}.txt"
            spy = py_spy(roots["worker cpu"], 600, raw)
            time.sleep(1)
        sampler.start()
        done = build(fam.name, "p1", embed)
        per, busy = sampler.stop()
        if spy is not None:
            spy.send_signal(signal.SIGINT)  # py-spy writes its file when interrupted
            spy.wait(30)
    say(f"{args.driver} build of {done.done} chunks: {done.seconds:.1f}s wall, host "
        f"{busy:.0%} busy over it ({os.cpu_count()} cores)")
    for name, t in sorted(per.items(), key=lambda kv: -kv[1]):
        say(f"  {name:16s} {t:6.1f} CPU s  ({t / done.seconds:.0%} of a core)")
    if spy is not None and raw.exists():
        say("cpu worker, top leaf frames (share of samples):")
        for frame, share in top_frames(raw):
            say(f"  {share:5.1%}  {frame}")
    print(summary_line("profile_build", driver=args.driver, chunks=done.done,
                       wall_s=round(done.seconds, 2), host_busy=round(busy, 3),
                       cpu_s={k: round(v, 2) for k, v in per.items()}))


if __name__ == "__main__":
    main()
