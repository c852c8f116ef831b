"""Every tuning knob in one model, validated together, named by its variable."""

from __future__ import annotations

import subprocess
import sys

import pytest

from reembed.errors import ConfigError
from reembed.settings import Tuning
from reembed.worker.schedule import beat_schedule


def test_the_defaults_are_consistent_and_what_the_docs_say() -> None:
    t = Tuning.from_env({})
    assert (t.lease_s, t.renew_s, t.reap_s) == (45, 15, 15)
    assert (t.batch_soft_limit_s, t.batch_time_limit_s, t.visibility_timeout) == (840, 870, 3600)
    assert t.batch_chunks == 256 and t.agreement_min is None and t.state_dir == ".reembed"


def test_a_task_limit_past_the_visibility_timeout_is_refused_naming_both() -> None:
    with pytest.raises(ConfigError) as err:
        Tuning.from_env({"REEMBED_VISIBILITY_TIMEOUT": "800"})
    assert "REEMBED_BATCH_TIME_LIMIT_S=870 must be less than REEMBED_VISIBILITY_TIMEOUT=800" \
        in str(err.value)
    ok = Tuning.from_env({"REEMBED_VISIBILITY_TIMEOUT": "800", "REEMBED_BATCH_SOFT_LIMIT_S": "500",
                          "REEMBED_BATCH_TIME_LIMIT_S": "550", "REEMBED_PLAN_SOFT_LIMIT_S": "600",
                          "REEMBED_PLAN_TIME_LIMIT_S": "700"})
    assert ok.visibility_timeout == 800
    long_batches = Tuning.from_env({"REEMBED_LEASE_S": "30"})  # renewed: shorter than a batch
    assert long_batches.lease_s < long_batches.batch_time_limit_s


@pytest.mark.parametrize(("env", "needle"), [
    ({"REEMBED_LEASE_S": "2"}, "REEMBED_LEASE_S='2' Input should be greater than or equal to 3"),
    ({"REEMBED_BATCH_SOFT_LIMIT_S": "900"}, "REEMBED_BATCH_SOFT_LIMIT_S=900 must be less"),
    ({"REEMBED_MAX_ATTEMPTS": "many"}, "REEMBED_MAX_ATTEMPTS='many'"),
    ({"REEMBED_BATCH_CHUNKS": "0"}, "REEMBED_BATCH_CHUNKS='0'"),
    ({"REEMBED_SELF_RETRIEVAL_MIN": "1.5"}, "REEMBED_SELF_RETRIEVAL_MIN='1.5'"),
])
def test_bad_values_name_the_variable_and_the_rule(env: dict[str, str], needle: str) -> None:
    with pytest.raises(ConfigError, match=needle.replace("(", r"\(")):
        Tuning.from_env(env)


def test_gate_thresholds_can_be_turned_off_and_empty_means_default() -> None:
    t = Tuning.from_env({"REEMBED_SELF_RETRIEVAL_MIN": "off", "REEMBED_GOLDEN_MIN_RECALL": "none",
                         "REEMBED_LEASE_S": ""})
    assert t.self_retrieval_min is None and t.golden_min_recall is None and t.lease_s == 45
    with pytest.raises(ConfigError):
        Tuning.from_env({"REEMBED_LEASE_S": "off"})  # only thresholds turn off


def test_beat_intervals_come_from_the_same_model() -> None:
    sched = beat_schedule(Tuning.from_env({"REEMBED_SYNC_S": "7", "REEMBED_GC_S": "0"}))
    assert sched["sync-families"]["schedule"] == 7.0 and "gc-versions" not in sched


@pytest.mark.parametrize("kind", ["control", "cpu", "gpu", "beat"])
def test_a_worker_with_a_bad_setting_refuses_to_start_with_one_line(kind: str) -> None:
    out = subprocess.run([sys.executable, "-m", f"workers.{kind}"], capture_output=True,
                         text=True, timeout=60,
                         env={"PATH": "/usr/bin:/bin", "REEMBED_VISIBILITY_TIMEOUT": "100",
                              "CELERY_BROKER_URL": "redis://127.0.0.1:1/0"})
    assert out.returncode == 1, out.stderr
    assert f"reembed {kind} worker: REEMBED_BATCH_TIME_LIMIT_S=870 must be less than " \
           "REEMBED_VISIBILITY_TIMEOUT=100" in out.stderr
    assert "Traceback" not in out.stderr
