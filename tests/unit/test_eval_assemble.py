"""The report assembly's module layout and its run-time-free report.json."""

from __future__ import annotations

import subprocess
import sys

from gdgan.evaluation.assemble import REPORT_KIND, assemble_report, pop_timings
from gdgan.evaluation.plan import EvaluationPlan
from gdgan.evaluation.sections import fixed_threads
from gdgan.jobs.records import job_artifact_id
from gdgan.store import ArtifactStore


def test_assemble_does_not_import_experiment() -> None:
    """No import circle: the report side stands alone; experiment re-exports assemble_report."""
    code = (
        "import sys, gdgan.evaluation.assemble\n"
        "assert 'gdgan.evaluation.experiment' not in sys.modules, 'assemble imports experiment'\n"
        "from gdgan.evaluation.experiment import assemble_report\n"
        "assert assemble_report is gdgan.evaluation.assemble.assemble_report\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]


def test_pop_timings_removes_every_run_time() -> None:
    report = {
        "seconds": 3.2,
        "quality": {"seconds": 1.5, "domain_network": {"seconds": 0.7, "kind": "small"}},
    }
    assert pop_timings(report) == {
        "seconds": 3.2,
        "quality/seconds": 1.5,
        "quality/domain_network/seconds": 0.7,
    }
    assert report == {"quality": {"domain_network": {"kind": "small"}}}
    assert pop_timings({"quality": {}}) == {}


def test_fixed_threads_restores_the_count() -> None:
    import torch

    before = torch.get_num_threads()
    with fixed_threads(1):
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == before


def test_a_redelivered_report_task_keeps_the_stored_report(local_store: ArtifactStore) -> None:
    """The report part's worker died (or Redis went) after the commit, before the job recorded it:
    the redelivered part, with the job's fixed id, keeps that report (nothing is assembled: the
    plan's dataset does not even exist) instead of storing a second one."""
    rid = job_artifact_id(REPORT_KIND, "job-evaluate-20261202-0123456789")
    with local_store.writer(REPORT_KIND, rid) as w:
        w.put_json("report.json", {"rows": {}})
        w.commit(config={}, parents=[])
    plan = EvaluationPlan(dataset_id="dataset-20261202-0000000000", repeats=1, strategies=["none"])
    assert assemble_report(plan, [], local_store, artifact_id=rid) == rid
    assert [m.id for m in local_store.list(REPORT_KIND)] == [rid]
