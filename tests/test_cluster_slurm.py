"""The cluster path against a real one-node Slurm (slurmctld + slurmd + munged on localhost).

Array jobs written and submitted by the installed ``blox-lat cluster slurm`` train 4 models on
a synthetic CIFAR-100 and measure 8 models on ``cpu``; one training task is cancelled with
scancel mid-run and resubmitted with the command ``cluster status`` prints; the release built
from the shard outputs equals the one built from the same records laid out as one machine
writes them. Skipped only where the Slurm or munge binaries are missing.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
from slurm_cluster import slurm_missing

from blox_lat import cluster as cl
from blox_lat import space as sp

WHY = slurm_missing()
needs_slurm = pytest.mark.skipif(WHY is not None, reason=WHY or "")

BLOX_LAT = str(Path(sys.executable).with_name("blox-lat"))
# small models (the cheapest ones train in seconds on a busy CPU); shards split by index parity:
# shard 1 gets 23184, 22796 and shard 2 gets 23183, 22601 (trained in this order)
TRAIN_MODELS = "23184,23183,22796,22601"
MEASURE_MODELS = "23184,23183,22796,22601,53156,69356,72459,60626"


@pytest.fixture(scope="module")
def work():
    from blox_lat.training._synthetic import write_synthetic_cifar100

    # our own folder: concurrent pytest sessions prune old basetemp folders
    root = Path(tempfile.mkdtemp(prefix="blox-lat-cluster-"))
    archive = write_synthetic_cifar100(root / "cifar", n_train=500, n_test=50, classes=10, seed=0)
    yield {"root": root, "archive": archive, "train": root / "train", "measure": root / "measure",
           "store": root / "store", "times": {}}
    shutil.rmtree(root, ignore_errors=True)


def blox_lat(*args: str, cwd: Path, check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run([BLOX_LAT, *args], cwd=cwd, capture_output=True, text=True, timeout=300, check=False,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})
    if check and proc.returncode != 0:
        raise AssertionError(f"blox-lat {' '.join(args)} -> {proc.returncode}\n{proc.stdout}\n{proc.stderr}")
    return proc


def status(out: Path, cwd: Path) -> tuple[int, dict]:
    proc = blox_lat("cluster", "status", str(out), "--json", cwd=cwd, check=False)
    assert proc.returncode in (0, 1), proc.stderr
    (job,) = json.loads(proc.stdout)["jobs"]
    return proc.returncode, job


def wait_for(predicate, timeout_s: float, what: str, step: float = 0.1):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(step)
    raise AssertionError(f"timed out after {timeout_s:.0f} s waiting for {what}")


# -- without a scheduler: the script and the status from the outputs -------------------------------

def test_dry_run_script_and_status_from_outputs(tmp_path):
    from blox_lat.training._records import atomic_write_json

    proc = blox_lat("cluster", "slurm", "train", "normal", "0:5", "--out", "runs", "--epochs", "1", "--shards", "2",
                    "--gres", "gpu:1", "--time", "1:00:00", "--extra-sbatch=--mem=8G", "--setup", "module load cuda",
                    "--dry-run", cwd=tmp_path)
    (job,) = cl.load_jobs(tmp_path / "runs")
    script = proc.stdout
    assert script == job.script_path.read_text() and not job.submissions
    for line in ("#SBATCH --array=1-2", "#SBATCH --requeue", "#SBATCH --gres=gpu:1", "#SBATCH --time=1:00:00",
                 "#SBATCH --mem=8G", f"#SBATCH --chdir={tmp_path}", "module load cuda",
                 f"#SBATCH --output={job.folder / job.name}/shard-%a.log"):
        assert line + "\n" in script, line
    assert script.rstrip().endswith('train normal 0:5 --out runs --epochs 1 --shard "${SLURM_ARRAY_TASK_ID}/2"')
    # status from the outputs alone: model 0 done, 2 diverged, 1 half trained (shard 1: 0, 2, 4; shard 2: 1, 3)
    records = tmp_path / "runs" / "normal"
    atomic_write_json(records / f"{sp.from_index(0).hash}-0.json", {"kind": "training"})
    atomic_write_json(records / f"{sp.from_index(2).hash}-0.failed.json", {"kind": "training-failed"})
    atomic_write_json(records / "checkpoints" / f"{sp.from_index(1).hash}-0.pt", {})
    (st,) = cl.cluster_status(tmp_path / "runs", scheduler=False)
    assert [(s.total, s.done, s.failed, s.in_progress, s.remaining, s.state) for s in st.shards] == [
        (3, 1, 1, 0, 1, "unknown"), (2, 0, 0, 1, 2, "unknown")]
    # the same command again is the same job: one record, one script
    blox_lat("cluster", "slurm", "train", "normal", "0:5", "--out", "runs", "--epochs", "1", "--shards", "2",
             "--gres", "gpu:1", "--time", "1:00:00", "--extra-sbatch=--mem=8G", "--setup", "module load cuda",
             "--dry-run", cwd=tmp_path)
    assert len(list((tmp_path / "runs" / "slurm").glob("*.json"))) == 1


def test_dry_run_measure_and_export_layouts(tmp_path):
    proc = blox_lat("cluster", "slurm", "measure", "0:6", "--runs", "20", "--device-file", "hosts/{node}.yaml",
                    "--out", "m", "--shards", "3", "--dry-run", cwd=tmp_path)
    last = proc.stdout.rstrip().splitlines()[-1]
    assert '--device-file "hosts/${SLURMD_NODENAME}.yaml"' in last
    assert f'--out {tmp_path}/m/shard-"${{SLURM_ARRAY_TASK_ID}}"-of-3 --shard "${{SLURM_ARRAY_TASK_ID}}/3"' in last
    proc = blox_lat("cluster", "slurm", "export", "-f", "onnx", "0:6", "--out", "store", "--shards", "3", "--dry-run",
                    cwd=tmp_path)
    (job,) = cl.load_jobs(tmp_path / "store")
    assert f'export -f onnx @{job.folder / job.name}/"shard-${{SLURM_ARRAY_TASK_ID}}.sel" --out store' in proc.stdout
    for k in (1, 2, 3):  # a selector file per shard, the models of --shard k/3
        lines = (job.folder / job.name / f"shard-{k}.sel").read_text().split()
        assert lines == [a.hash for a in sp.shard(sp.select("0:6"), f"{k}/3")]
    bad = blox_lat("cluster", "slurm", "measure", "0:6", "--shard", "1/2", "--shards", "2", "--dry-run", cwd=tmp_path,
                   check=False)
    assert bad.returncode == 2 and "leave out --shard" in bad.stderr


# -- against a real Slurm ------------------------------------------------------------------------

@needs_slurm
def test_train_array_cancel_resubmit(slurm, work):
    root, out = work["root"], work["train"]
    started = time.monotonic()
    proc = blox_lat("cluster", "slurm", "train", "normal", TRAIN_MODELS, "--data", str(work["archive"]), "--out", "train",
                    "--epochs", "1", "--batch-size", "32", "--no-augment", "--device", "cpu", "--limit-train", "32",
                    "--limit-eval", "50",
                    "--shards", "2", "--time", "00:30:00", cwd=root)
    assert proc.stdout.startswith("submitted "), proc.stdout
    (job,) = cl.load_jobs(out)
    records = Path(job.units["folder"])
    script = job.script_path.read_text()
    assert '--shard "${SLURM_ARRAY_TASK_ID}/2"' in script and "#SBATCH --requeue" in script
    assert f"source {Path(sys.executable).parent / 'activate'}" in script  # the submitting environment
    assert f"exec {Path(sys.executable).parent}/python" in script  # that environment's Python
    assert " -m blox_lat.cli.cluster train normal " in script  # blox-lat with SIGTERM as Ctrl-C

    # while it runs: squeue's view and the outputs agree
    running = wait_for(lambda: (s := cl.job_status(job)) and {x.state for x in s.shards} == {"running"} and s,
                       60, "both tasks running")
    assert running.totals()["total"] == 4 and running.scheduler_error is None
    assert running.totals()["done"] <= len(list(records.glob("*.json")))

    # cancel shard 2 after its first model is done, while its second one trains
    first = records / f"{sp.from_index(23183).hash}-0.json"
    wait_for(first.exists, 240, f"shard 2's first record {first.name}", step=0.05)
    slurm.run("scancel", f"{job.submissions[0]['job_id']}_2")
    slurm.wait_empty(f"blox-lat-{job.name}")
    work["times"]["train array (2 tasks, one cancelled)"] = time.monotonic() - started
    code, mid = status(out, root)
    by_shard = {s["shard"]: s for s in mid["per_shard"]}
    assert by_shard[1]["state"] == "done" and by_shard[1]["done"] == 2
    assert by_shard[2]["state"] == "stopped" and (by_shard[2]["done"], by_shard[2]["remaining"]) == (1, 1), \
        "shard 2 finished before scancel reached it: the resume is not exercised"
    assert code == 1 and mid["resubmit"] == f"sbatch --array=2 {job.script_path}"
    print("\n" + blox_lat("cluster", "status", "train", cwd=root, check=False).stdout)  # docs/cluster.md shows one

    # resubmit what status says; the task skips model 1 and trains model 3
    resumed = time.monotonic()
    subprocess.run(mid["resubmit"].split(), cwd=root, check=True, capture_output=True, env=slurm.env)
    wait_for(lambda: slurm.queued(f"blox-lat-{job.name}"), 30, "the resubmitted task in the queue")
    slurm.wait_empty(f"blox-lat-{job.name}")
    work["times"]["train resubmitted task"] = time.monotonic() - resumed
    code, after = status(out, root)
    assert code == 0 and (after["done"], after["failed"], after["remaining"]) == (4, 0, 0), after
    assert [s["state"] for s in after["per_shard"]] == ["done", "done"] and after["resubmit"] is None
    names = sorted(p.name for p in records.glob("*.json"))
    assert names == sorted(f"{a.hash}-0.json" for a in sp.select(TRAIN_MODELS))  # each model exactly once
    log = job.log_path(2).read_text()
    assert sum(line.startswith("== ") for line in log.splitlines()) == 2 and "(record exists)" in log, log
    assert "blox-lat: interrupted" in log  # scancel's SIGTERM stopped it as Ctrl-C does


@needs_slurm
def test_measure_array(slurm, work):
    root, out = work["root"], work["measure"]
    started = time.monotonic()
    blox_lat("cluster", "slurm", "measure", MEASURE_MODELS, "--runs", "20", "--warmup-runs", "2", "--warmup-s", "0",
             "--store", str(work["store"]), "--out", str(out), "--quiet", "--shards", "2", cwd=root)
    (job,) = cl.load_jobs(out)
    slurm.wait_empty(f"blox-lat-{job.name}")
    work["times"]["measure array (2 tasks, 8 models)"] = time.monotonic() - started
    code, after = status(out, root)
    assert code == 0 and (after["done"], after["remaining"]) == (8, 0), after
    from blox_lat.harness import read_journal

    seen = []
    for k in (1, 2):
        lines = list(read_journal(out / f"shard-{k}-of-2", kind="measurement"))
        assert all(r["status"] == "ok" for r in lines)
        seen += [r["model_index"] for r in lines]
        assert {i % 2 for i in seen[-len(lines):]} == {k - 1}  # the shard's own models
    assert sorted(seen) == sorted(a.index for a in sp.select(MEASURE_MODELS))  # every model exactly once
    # the store the tasks shared holds every artifact: an export job over it has nothing left
    blox_lat("cluster", "slurm", "export", MEASURE_MODELS, "-f", "onnx", "--out", str(work["store"]), "--shards", "2",
             "--dry-run", cwd=root)
    code, export = status(work["store"], root)
    assert code == 0 and (export["done"], export["remaining"]) == (8, 0), export


@needs_slurm
def test_merged_release_equals_single_machine_build(work):
    """``dataset build --from`` the shard outputs == the same records in one machine's layout."""
    root = work["root"]
    if not (work["train"] / "normal").is_dir() or not list(work["measure"].glob("shard-*/journal.jsonl")):
        pytest.skip("needs the outputs of the train and measure arrays above")
    single = root / "single"
    (single / "train" / "normal").mkdir(parents=True)
    for record in (work["train"] / "normal").glob("*.json"):
        shutil.copy2(record, single / "train" / "normal" / record.name)
    (single / "measure").mkdir()
    with open(single / "measure" / "journal.jsonl", "wb") as journal:  # one campaign folder, shard after shard
        journal.writelines((work["measure"] / f"shard-{k}-of-2" / "journal.jsonl").read_bytes() for k in (1, 2))
    build = ("dataset", "build", "--version", "1.0.0", "--no-static", "--jobs", "1")
    started = time.monotonic()
    blox_lat(*build, "--from", str(work["train"]), "--from", str(work["measure"]), "--out", "rel-cluster", cwd=root)
    work["times"]["dataset build from the shards"] = time.monotonic() - started
    blox_lat(*build, "--from", str(single / "train"), "--from", str(single / "measure"), "--out", "rel-single",
             cwd=root)
    a, b = root / "rel-cluster", root / "rel-single"
    files = sorted(p.relative_to(a).as_posix() for p in a.rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(b).as_posix() for p in b.rglob("*") if p.is_file())
    assert "sections/bench/cpu.parquet" in files and "sections/base/0.parquet" in files, files
    for name in files:  # dataset.json too: provenance digests the measurements, not the journal files
        assert (a / name).read_bytes() == (b / name).read_bytes(), f"{name} differs"
    print("\ncluster timings: " + ", ".join(f"{k} {v:.1f} s" for k, v in work["times"].items()))
