"""The one retry policy (``ReembedTask``): classify once, retry exactly the retryable ones.

The tasks run through Celery's own tracer (``Task.apply``: request, retries and
``self.retry`` as a worker runs them), on an app of their own; the real workers
meeting a real outage are in ``tests/faults``.
"""

from __future__ import annotations

from typing import Any

import pytest
from celery import Celery
from pymongo.errors import AutoReconnect

from reembed.errors import ConfigError, ThrottledError, TransientError
from reembed.tasks.base import ReembedTask, backoff_s

app = Celery("policy", broker="memory://", backend="cache+memory://")
calls: list[int] = []
given_up: list[str] = []


class Recording(ReembedTask):
    max_retries = 3

    def give_up(self, err: BaseException, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        given_up.append(type(err).__name__)
        return "gave up"


@app.task(base=Recording, bind=True)
def flaky(self: Recording, failures: int, exc: str) -> str:
    calls.append(self.request.retries)
    if len(calls) <= failures:
        raise {"reconnect": AutoReconnect("primary went away"),
               "config": ConfigError("bad input"),
               "throttled": ThrottledError("429 for 300s")}[exc]
    return "ok"


@pytest.fixture(autouse=True)
def _fresh() -> None:
    calls.clear()
    given_up.clear()


def test_a_raw_pymongo_outage_is_retried_until_it_passes() -> None:
    assert flaky.apply(args=(2, "reconnect")).get() == "ok"
    assert calls == [0, 1, 2] and not given_up


def test_retries_stop_at_the_cap_and_the_task_gives_up_on_the_classified_error() -> None:
    assert flaky.apply(args=(10, "reconnect")).get() == "gave up"
    assert calls == [0, 1, 2, 3] and given_up == [TransientError.__name__]


def test_a_service_asking_to_slow_down_is_retried_past_the_cap() -> None:
    assert flaky.apply(args=(10, "throttled")).get() == "ok"
    assert calls == list(range(11)) and not given_up


def test_input_errors_are_never_retried() -> None:
    assert flaky.apply(args=(1, "config")).get() == "gave up"
    assert calls == [0] and given_up == [ConfigError.__name__]


def test_backoff_doubles_and_is_capped() -> None:
    assert [backoff_s(r) for r in range(4)] == [2, 4, 8, 16]
    assert backoff_s(20) == 120 and backoff_s(20, cap=60) == 60


def test_every_reembed_task_uses_the_policy() -> None:
    from reembed.tasks import hygiene, runs  # noqa: F401  (importing registers the tasks)
    from reembed.worker import names
    from reembed.worker.app import app as real

    ours = {name: task for name, task in real.tasks.items() if name.startswith("reembed.")}
    assert set(ours) == set(names.ROUTES)
    assert all(isinstance(task, ReembedTask) for task in ours.values()), \
        [n for n, t in ours.items() if not isinstance(t, ReembedTask)]
