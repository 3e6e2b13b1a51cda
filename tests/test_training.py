"""Training pipeline: CIFAR-100 reading (real pickle format), augmentations, normal training
on a learnable synthetic task, distillation, fine-tuning from the block library, records the
dataset builder accepts, resume after a kill, and the `blox-lat train` CLI."""

from __future__ import annotations

import json
import os
import pickle
import shutil
import signal
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("kornia")

import blox_lat.dataset as ds  # noqa: E402
from blox_lat import space as sp  # noqa: E402
from blox_lat import training as tr  # noqa: E402
from blox_lat.cli.main import cli  # noqa: E402
from blox_lat.training._synthetic import write_synthetic_cifar100, write_tar  # noqa: E402

TEACHER_ARCH = "conv/conv/conv"
STUDENT_ARCH = "mbconv/conv/conv"  # shares stages 1 and 2 with the teacher
FAST = dict(batch_size=32, augment=False)


@pytest.fixture(scope="module", autouse=True)
def _threads():
    old = torch.get_num_threads()
    torch.set_num_threads(1)  # steadier than 2 threads on a busy 2-core CI machine, and repeatable
    yield
    torch.set_num_threads(old)


@pytest.fixture(scope="module")
def archive(tmp_path_factory) -> Path:
    return write_synthetic_cifar100(tmp_path_factory.mktemp("cifar"), n_train=300, n_test=100, classes=10, seed=0)


@pytest.fixture(scope="module")
def data(archive) -> tr.CifarData:
    return tr.load_cifar100(archive)


@pytest.fixture(scope="module")
def teacher_run(data, tmp_path_factory):
    """A normal run of the teacher on the learnable task: 3 epochs, lr 0.02 (the shared teacher)."""
    out = tmp_path_factory.mktemp("runs")
    cfg = tr.default_config("normal", epochs=3, lr=0.02, batch_size=16, augment=False)
    results = tr.train_models("normal", [TEACHER_ARCH], data, out, cfg)
    return out, cfg, results


@pytest.fixture(scope="module")
def teacher(teacher_run):
    out, _, results = teacher_run
    h = sp.resolve(TEACHER_ARCH).hash
    return tr.load_teacher(out / "normal" / "weights" / f"{h}-0.pt")


# -- data ---------------------------------------------------------------------------------

def test_archive_and_folder_read_the_same(archive, data, tmp_path, monkeypatch):
    assert data.sizes == (270, 30, 100)
    assert data.train_x.dtype == torch.uint8 and tuple(data.train_x.shape[1:]) == (3, 32, 32)
    assert int(data.train_y.max()) < 10 and len(data.classes) == 100
    folder = write_synthetic_cifar100(tmp_path, n_train=300, n_test=100, classes=10, seed=0, fmt="folder")
    other = tr.load_cifar100(folder)
    assert torch.equal(other.train_x, data.train_x) and torch.equal(other.test_y, data.test_y)
    assert torch.equal(tr.load_cifar100(tmp_path).val_x, data.val_x)  # the parent folder works too
    monkeypatch.setenv(tr.ENV_VAR, str(archive))
    assert torch.equal(tr.load_cifar100().val_y, data.val_y)
    # the split is fixed by its seed: train and val partition the 300 official training images
    assert not torch.equal(tr.load_cifar100(archive, split_seed=1).val_x, data.val_x)
    assert torch.equal(tr.load_cifar100(archive, split_seed=0).val_x, data.val_x)
    raw = np.frombuffer(tarfile.open(archive).extractfile("cifar-100-binary/train.bin").read(), np.uint8).reshape(-1, 3074)
    rows = {bytes(r) for r in raw[:, 2:]}
    assert {bytes(r.reshape(-1).numpy()) for r in data.train_x} | {bytes(r.reshape(-1).numpy()) for r in data.val_x} == rows


def test_python_pickle_version_only_with_explicit_opt_in(data, tmp_path):
    """The python release is pickles: refused by default, read (same images) with allow_pickle."""
    py = write_synthetic_cifar100(tmp_path, n_train=300, n_test=100, classes=10, seed=0, version="python")
    with pytest.raises(tr.DataError, match="--allow-pickle"):
        tr.load_cifar100(py)
    other = tr.load_cifar100(py, allow_pickle=True)
    assert torch.equal(other.train_x, data.train_x) and torch.equal(other.test_y, data.test_y)
    assert other.classes == data.classes
    r = _invoke(["train", "normal", "0", "--data", str(py), "--out", str(tmp_path / "o"), "--epochs", "1"])
    assert r.exit_code == 2 and "--allow-pickle" in r.output and r.output.strip().count("\n") == 0


def _tar_with(path: Path, members: dict[str, bytes]) -> Path:
    return write_tar(path, "cifar-100-python", members)


class _Evil:
    def __reduce__(self):
        return (os.system, ("touch /tmp/blox-lat-pwned",))


def test_missing_damaged_and_hostile_data(archive, tmp_path, monkeypatch):
    monkeypatch.delenv(tr.ENV_VAR, raising=False)
    with pytest.raises(tr.DataError, match="BLOX_LAT_CIFAR100"):
        tr.load_cifar100()
    with pytest.raises(tr.DataError, match="does not exist.*train, test, meta"):
        tr.load_cifar100(tmp_path / "nope.tar.gz")
    folder = write_synthetic_cifar100(tmp_path / "f", n_train=50, n_test=10, fmt="folder", version="python")
    (folder / "meta").unlink()
    with pytest.raises(tr.DataError, match="lacks meta"):
        tr.load_cifar100(folder, allow_pickle=True)
    binary = write_synthetic_cifar100(tmp_path / "b", n_train=50, n_test=10, fmt="folder")
    (binary / "test.bin").unlink()
    with pytest.raises(tr.DataError, match="lacks test.bin"):
        tr.load_cifar100(binary)
    (binary / "test.bin").write_bytes((binary / "train.bin").read_bytes()[:5000])
    with pytest.raises(tr.DataError, match="test.bin is damaged"):
        tr.load_cifar100(binary)
    junk = tmp_path / "junk.tar.gz"
    junk.write_bytes(b"\x1f\x8b not really gzip")
    with pytest.raises(tr.DataError, match="not a readable tar.gz"):
        tr.load_cifar100(junk)
    good = tarfile.open(write_synthetic_cifar100(tmp_path / "py", n_train=50, n_test=10, version="python"))
    members = {n: good.extractfile(f"cifar-100-python/{n}").read() for n in ("train", "test", "meta")}
    with pytest.raises(tr.DataError, match="train is damaged"):
        tr.load_cifar100(_tar_with(tmp_path / "trunc.tar.gz", {**members, "train": members["train"][:1000]}),
                         allow_pickle=True)
    marker = Path("/tmp/blox-lat-pwned")
    marker.unlink(missing_ok=True)
    evil = _tar_with(tmp_path / "evil.tar.gz", {**members, "test": pickle.dumps(_Evil(), protocol=2)})
    with pytest.raises(tr.DataError, match="--allow-pickle"):  # not even opened without the opt-in
        tr.load_cifar100(evil)
    with pytest.raises(tr.DataError, match="refusing to load posix.system|refusing to load os.system"):
        tr.load_cifar100(evil, allow_pickle=True)
    assert not marker.exists()
    bad = pickle.dumps({b"data": np.zeros((4, 100), np.uint8), b"fine_labels": [0] * 4}, protocol=2)
    with pytest.raises(tr.DataError, match=r"shape \(N, 3072\)"):
        tr.load_cifar100(_tar_with(tmp_path / "shape.tar.gz", {**members, "train": bad}), allow_pickle=True)


# -- augmentations ------------------------------------------------------------------------

def test_cutout_zeroes_one_clipped_16px_square():
    torch.manual_seed(0)
    x = torch.ones(400, 3, 32, 32)
    y = tr.cutout(x)
    holes = (y == 0).all(dim=1)  # (B, H, W): every channel zeroed together
    assert torch.equal((y == 0).any(dim=1), holes)
    sizes = holes.flatten(1).sum(1)
    assert int(sizes.max()) == 256 and int(sizes.min()) > 0  # full 16x16 inside, clipped at borders
    for img in holes[:50]:
        rows, cols = img.any(1).nonzero().flatten(), img.any(0).nonzero().flatten()
        assert img.sum() == len(rows) * len(cols)  # one axis-aligned rectangle
        assert len(rows) <= 16 and len(cols) <= 16
    assert (sizes == 256).float().mean() > 0.1


def test_train_augment_shapes_and_determinism(data):
    aug = tr.TrainAugment()
    batch = data.train_x[:64]
    torch.manual_seed(3)
    a = aug(batch)
    torch.manual_seed(3)
    b = aug(batch)
    torch.manual_seed(4)
    c = aug(batch)
    assert a.shape == (64, 3, 32, 32) and a.dtype == torch.float32
    assert torch.equal(a, b) and not torch.equal(a, c)
    plain = tr.normalize(batch)
    assert not torch.allclose(a, plain)
    assert (a == 0).all(dim=1).flatten(1).sum(1).min() > 0  # every image has its cutout hole
    mean = tr.normalize(data.train_x.float() / 255).mean(dim=(0, 2, 3))
    assert mean.abs().max() < 1.5  # normalised around 0 with the CIFAR-100 statistics
    one = aug(batch[:1])
    assert one.shape == (1, 3, 32, 32)


def test_randaugment_draws_operations_per_image():
    aug = tr.TrainAugment(flip_p=0.0, crop_padding=0, cutout_length=0)
    x = torch.rand(1, 3, 32, 32).repeat(200, 1, 1, 1)
    torch.manual_seed(0)
    y = aug.randaugment(x)
    distinct = {tuple(torch.round(img * 1000).flatten()[:64].tolist()) for img in y}
    assert len(distinct) > 20  # a per-batch choice would give at most a few variants (random signs only)


# -- runs ---------------------------------------------------------------------------------

def test_normal_training_beats_chance_and_writes_a_record(teacher_run):
    out, cfg, results = teacher_run
    assert [r.status for r in results] == ["done"]
    rec = json.loads(Path(results[0].record).read_text())
    assert rec["schema"] == 1 and rec["kind"] == "training" and rec["setting"] == "normal"
    assert rec["model_hash"] == sp.resolve(TEACHER_ARCH).hash and rec["epochs"] == 3 and rec["teacher"] is None
    assert all(len(rec["metrics"][k]) == 3 for k in ("train_top1", "train_top5", "train_loss", "val_top1", "val_top5", "val_loss"))
    assert rec["test"]["top1"] >= 25.0  # 10 classes: chance is 10 %
    assert rec["metrics"]["train_top1"][-1] > 40.0 and rec["metrics"]["train_loss"][-1] < rec["metrics"]["train_loss"][0]
    assert rec["train_time_s"] > 0 and rec["environment"]["torch"] == torch.__version__
    assert rec["config"]["optimizer"] == "sgd" and rec["config"]["momentum"] == 0.9
    assert not (out / "normal" / "checkpoints").exists()  # removed once done
    # a rerun skips the finished model; other settings into the same folder are refused
    again = tr.train_models("normal", [TEACHER_ARCH], tr.load_cifar100(rec["data"]["source"]), out, cfg)
    assert again[0].status == "skipped"
    with pytest.raises(tr.CheckpointError, match="other settings.*epochs"):
        tr.train_models("normal", [TEACHER_ARCH], tr.load_cifar100(rec["data"]["source"]), out,
                        tr.default_config("normal", epochs=4, lr=0.02, batch_size=16, augment=False))


def test_table4_defaults():
    n, d, f = (tr.default_config(s) for s in ("normal", "distill", "finetune"))
    assert (n.optimizer, n.lr, n.momentum, n.weight_decay, n.batch_size, n.epochs, n.loss, n.augment) == \
        ("sgd", 0.01, 0.9, 5e-4, 256, 200, "ce", True)
    assert (d.optimizer, d.lr, d.betas, d.weight_decay, d.batch_size, d.loss, d.augment) == \
        ("adam", 0.005, (0.9, 0.999), 5e-4, 256, "mse", False)
    assert d.epochs in (1, 10, 50) and f.epochs in (10, 50, 200)
    assert (f.optimizer, f.lr, f.loss, f.alpha, f.temperature, f.augment) == ("adam", 5e-5, "kd", 0.9, 4.0, True)
    assert tr.default_config("normal", fraction="1/9").loss == "kd"
    with pytest.raises(tr.TrainingError, match="--fraction"):
        tr.default_config("normal", fraction="1/2")


class _Kill(Exception):
    pass


def test_killed_run_resumes_from_its_checkpoint(data, tmp_path):
    cfg = tr.default_config("normal", epochs=2, lr=0.02, batch_size=32, limit_train=48, limit_eval=20)  # augmentations on

    def killer(event):
        if event["event"] == "batch" and event["epoch"] == 1 and event["batch"] == 1:
            raise _Kill  # killed mid-epoch, after 1 checkpointed epoch

    with pytest.raises(_Kill):
        tr.train_models("normal", [TEACHER_ARCH], data, tmp_path / "a", cfg, progress=killer)
    h = sp.resolve(TEACHER_ARCH).hash
    assert (tmp_path / "a" / "normal" / "checkpoints" / f"{h}-0.pt").exists()
    assert not (tmp_path / "a" / "normal" / f"{h}-0.json").exists()
    events = []
    resumed = tr.train_models("normal", [TEACHER_ARCH], data, tmp_path / "a", cfg, progress=events.append)
    assert resumed[0].status == "done"
    assert [e["start_epoch"] for e in events if e["event"] == "start"] == [1]
    rec = json.loads(Path(resumed[0].record).read_text())
    assert rec["resumed_from_epoch"] == 1 and rec["epochs"] == 2 and len(rec["metrics"]["val_top1"]) == 2
    straight = tr.train_models("normal", [TEACHER_ARCH], data, tmp_path / "b", cfg)
    ref = json.loads(Path(straight[0].record).read_text())
    assert rec["metrics"] == ref["metrics"] and rec["test"] == ref["test"]  # RNG, optimizer and scheduler restored


def test_distillation_library_finetune_and_dataset(data, teacher, teacher_run, tmp_path):
    out = tmp_path / "out"
    archs = [sp.resolve(TEACHER_ARCH), sp.resolve(STUDENT_ARCH)]
    blocks = tr.candidate_blocks(archs)
    assert blocks == [(0, archs[0].blocks[0]), (0, archs[1].blocks[0]), (1, archs[0].blocks[1]), (2, archs[0].blocks[2])]
    dcfg = tr.default_config("distill", epochs=2, batch_size=8, limit_train=96)
    res = tr.distill_blocks(blocks, data, out, dcfg, teacher=teacher)
    assert [r.status for r in res] == ["done"] * 4
    lib = out / f"distill-{teacher.model_hash[:8]}-2"
    for r in res:
        rec = json.loads(Path(r.record).read_text())
        assert rec["kind"] == "distill-block" and rec["teacher"] == teacher.model_hash and rec["epochs"] == 2
        assert rec["block_name"] == sp.list_blocks()[rec["block_id"]].name
        # distillation reduces the block MSE: on held-out images (eval mode) and while training
        assert rec["val_mse"] < rec["val_mse_initial"], (r.name, rec["val_mse"], rec["val_mse_initial"])
        assert rec["metrics"]["distill_loss"][-1] < rec["metrics"]["distill_loss"][0]
        assert rec["distill_loss"] == rec["metrics"]["distill_loss"][-1]
        assert rec["val_acc_delta"] == pytest.approx(rec["swapped_val_top1"] - rec["teacher_val_top1"])
        assert (lib / "blocks" / f"{r.name}.pt").exists()
    assert [r.status for r in tr.distill_blocks(blocks, data, out, dcfg, teacher=teacher)] == ["skipped"] * 4

    # the student carries the library's cells and the teacher's stem, reductions and head
    student = tr.assemble_student(STUDENT_ARCH, teacher, lib)
    for s in range(3):
        saved = torch.load(lib / "blocks" / f"s{s}-b{archs[1].blocks[s]}.pt", weights_only=True)["state_dict"]
        for k, v in student.stages[s][0].state_dict().items():
            assert torch.equal(v, saved[k]), (s, k)
        for k, v in student.stages[s][1].state_dict().items():
            assert torch.equal(v, teacher.model.stages[s][1].state_dict()[k])
    assert torch.equal(student.classifier.weight, teacher.model.classifier.weight)
    fcfg = tr.default_config("finetune", epochs=1, batch_size=32, limit_train=32)
    fres = tr.train_models("finetune", [STUDENT_ARCH], data, out, fcfg, teacher=teacher, library=lib)
    frec = json.loads(Path(fres[0].record).read_text())
    assert frec["kind"] == "training" and frec["setting"] == "finetune" and frec["teacher"] == teacher.model_hash
    assert len(frec["metrics"]["val_top1"]) == 1

    # missing library block: a clear error naming it
    with pytest.raises(tr.CheckpointError, match="lacks stage 0 block"):
        tr.assemble_student("bconv/conv/conv", teacher, lib)

    # the dataset builder takes the records unchanged (teacher's normal run + distill + finetune)
    rel = tmp_path / "rel"
    ds.build([teacher_run[0], out], rel, "1.0.0")
    release = ds.open(rel)
    t = teacher.model_hash
    assert set(release.sections) >= {"base/0", "ext/0", "env/0", f"distill/{t}/2", f"finetune/{t}/1"}
    teacher_rec = json.loads((teacher_run[0] / "normal" / f"{t}-0.json").read_text())
    assert release.test_acc(TEACHER_ARCH) == pytest.approx(round(teacher_rec["test"]["top1"], 3))
    dist = release.to_pandas(f"distill/{t}/2").set_index("model_hash")
    assert set(dist.index) == {a.hash for a in archs}
    recs = {(r["stage"], r["block_id"]): r for r in (json.loads(Path(x.record).read_text()) for x in res)}
    row = dist.loc[archs[1].hash]
    assert row["loss_sum"] == pytest.approx(sum(recs[(s, archs[1].blocks[s])]["distill_loss"] for s in range(3)), abs=1e-5)


def test_remap_copies_the_teacher_block(teacher):
    t_cell = teacher.model.stages[0][0]
    same = tr.make_cell(sp.resolve(TEACHER_ARCH).blocks[0], 0)
    assert tr.remap_into(same, t_cell) == len([m for m in same.modules() if isinstance(m, torch.nn.Conv2d)])
    for k, v in same.state_dict().items():
        if not k.endswith("num_batches_tracked"):
            assert torch.equal(v, t_cell.state_dict()[k]), k
    other = tr.make_cell(sp.get_block("res.conv.bconv").id, 0)  # dense convs from conv; depthwise kept fresh
    before = {k: v.clone() for k, v in other.state_dict().items()}
    assert tr.remap_into(other, t_cell) > 0
    w = other.op0[0][0].weight  # first dense 3x3 conv: an exact copy of the teacher's first conv
    assert torch.equal(w, t_cell.op1[0][0].weight)  # the teacher block `conv` only has op1
    dw = [m for m in other.modules() if isinstance(m, torch.nn.Conv2d) and m.groups > 1][0]
    assert any(torch.equal(dw.weight, v) for v in before.values())
    # bconv's first 1x1 conv (32 -> 16) is the 5th dense conv: it takes the teacher's last (4th) one,
    # its centre tap and its leading channels
    pw = other.op1[0].body[0][0]
    src = t_cell.op1[3][0].weight
    assert torch.equal(pw.weight, src[: pw.out_channels, : pw.in_channels, 1:2, 1:2])


def test_remap_init_distillation_starts_closer(data, teacher, tmp_path):
    block = sp.resolve(TEACHER_ARCH).blocks[1]
    cfg = dict(epochs=1, batch_size=32, limit_train=32, limit_eval=20)
    rand = tr.distill_blocks([(1, block)], data, tmp_path, tr.default_config("distill", **cfg), teacher=teacher)
    remap = tr.distill_blocks([(1, block)], data, tmp_path, tr.default_config("distill", init="remap", **cfg), teacher=teacher)
    r0, r1 = (json.loads(Path(r[0].record).read_text()) for r in (rand, remap))
    assert r1["init"] == "remap" and "remap" in Path(remap[0].record).parent.name
    assert r1["val_mse_initial"] < 1e-9 < r0["val_mse_initial"]  # the same block: remapping copies it exactly


def test_low_fidelity_fraction_uses_kd_on_a_fixed_subset(data, teacher, tmp_path):
    cfg = tr.default_config("normal", epochs=1, fraction="1/9", lr=0.02, **FAST, limit_eval=20)
    res = tr.train_models("normal", [STUDENT_ARCH], data, tmp_path, cfg, teacher=teacher)
    rec = json.loads(Path(res[0].record).read_text())
    assert rec["kind"] == "training-lowfi" and rec["fraction"] == "1/9" and rec["config"]["loss"] == "kd"
    assert rec["data"]["train_images"] == round(270 / 9) and rec["teacher"] == teacher.model_hash
    with pytest.raises(tr.TrainingError, match="teacher"):
        tr.train_models("normal", [STUDENT_ARCH], data, tmp_path / "x", cfg)
    # ignored by the dataset builder (no release section for low-fidelity scores)
    with pytest.raises(ds.InputError, match="no journals"):
        ds.build([tmp_path], tmp_path / "rel", "1.0.0")


@pytest.mark.gpu
def test_gpu_path(data, tmp_path):
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    cfg = tr.default_config("normal", epochs=2, batch_size=64, lr=0.02)
    res = tr.train_models("normal", [TEACHER_ARCH], data, tmp_path, cfg, device="cuda")
    rec = json.loads(Path(res[0].record).read_text())
    assert rec["environment"]["gpu"] and len(rec["metrics"]["val_top1"]) == 2
    t = tr.load_teacher(tmp_path / "normal" / "weights" / f"{rec['model_hash']}-0.pt", device="cuda")
    d = tr.distill_blocks([(0, 9)], data, tmp_path, tr.default_config("distill", epochs=1, batch_size=64), teacher=t,
                          device="cuda")
    assert d[0].status == "done"
    aug = tr.TrainAugment().to("cuda")
    assert aug(data.train_x[:8].cuda()).device.type == "cuda"


# -- CLI ----------------------------------------------------------------------------------

def _invoke(args):
    from click.testing import CliRunner

    return CliRunner().invoke(cli, args)


_ENV1 = {**os.environ, "OMP_NUM_THREADS": "1"}
TINY = ["--epochs", "1", "--batch-size", "32", "--limit-train", "32", "--limit-eval", "20", "--device", "cpu", "--no-augment"]


def test_cli_runs_shards_and_reports(archive, tmp_path):
    r = _invoke(["train", "normal", f"{TEACHER_ARCH},{STUDENT_ARCH}", "--data", str(archive), "--out", str(tmp_path),
                 "--shard", "2/2", "--json", *TINY])
    assert r.exit_code == 0, r.output
    doc = json.loads(r.stdout)
    ids = [sp.resolve(a) for a in (TEACHER_ARCH, STUDENT_ARCH)]
    assert [x["name"] for x in doc["results"]] == [f"{a.hash}-0" for a in ids if a.index % 2 == 1]
    assert doc["summary"]["done"] == 1
    r = _invoke(["train", "normal", f"{TEACHER_ARCH},{STUDENT_ARCH}", "--data", str(archive), "--out", str(tmp_path), *TINY])
    assert r.exit_code == 0 and "skipped" in r.stdout and "done" in r.stdout
    assert len(list((tmp_path / "normal").glob("*.json"))) == 2


@pytest.mark.parametrize("args, message", [
    (["normal", "0", "--data", "/nonexistent/cifar"], "does not exist"),
    (["normal", "bogus", "--data", "{archive}"], "does not name a model"),
    (["normal", "0", "--data", "{archive}", "--device", "tpu"], "use cpu, cuda"),
    (["normal", "0", "--data", "{archive}", "--shard", "3/2"], "bad shard"),
    (["normal", "0", "--data", "{archive}", "--fraction", "1/9"], "--teacher"),
    (["normal", "0", "--data", "{archive}", "--epochs", "0"], "--epochs must be a positive"),
    (["distill", "0", "--data", "{archive}", "--teacher", "/nonexistent.pt"], "does not exist"),
    (["finetune", "0", "--data", "{archive}", "--teacher", "{junk}", "--library", "x"], "damaged or not a blox-lat file"),
])
def test_cli_errors_are_one_line(archive, tmp_path, args, message):
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a torch file")
    args = [a.format(archive=archive, junk=junk) for a in args]
    proc = subprocess.run([sys.executable, "-m", "blox_lat", "train", *args, "--out", str(tmp_path / "o")],
                          capture_output=True, text=True, timeout=120, env=_ENV1)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("blox-lat: error:") and message in lines[0], proc.stderr


def test_cli_cuda_without_cuda_is_one_line(archive, tmp_path):
    if torch.cuda.is_available():
        pytest.skip("CUDA is available here")
    r = _invoke(["train", "normal", "0", "--data", str(archive), "--out", str(tmp_path), "--device", "cuda"])
    assert r.exit_code == 2 and "CUDA is not available" in r.output


def test_console_script_sigkill_and_resume(archive, tmp_path):
    """The installed `blox-lat train` killed with SIGKILL mid-run continues from its checkpoint."""
    exe = shutil.which("blox-lat")
    cmd = ([exe] if exe else [sys.executable, "-m", "blox_lat"]) + [
        "train", "normal", TEACHER_ARCH, "--data", str(archive), "--out", str(tmp_path), "--epochs", "6",
        "--batch-size", "32", "--limit-train", "32", "--limit-eval", "10", "--device", "cpu", "--no-augment"]
    h = sp.resolve(TEACHER_ARCH).hash
    ckpt = tmp_path / "normal" / "checkpoints" / f"{h}-0.pt"
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=_ENV1)
    deadline = time.monotonic() + 120
    while not ckpt.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL, proc.stderr.read().decode()
    epoch = json.loads(torch.load(ckpt, weights_only=True)["meta"])["epoch"]  # the checkpoint survived the kill
    assert 1 <= epoch < 6
    cmd[cmd.index("6")] = str(epoch + 1)
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=120, env=_ENV1)
    # other epochs than the checkpoint's run are refused...
    assert res.returncode == 2 and "other settings" in res.stderr
    cmd[cmd.index(str(epoch + 1))] = "6"
    res = subprocess.run(cmd + ["--json"], capture_output=True, text=True, timeout=300, env=_ENV1)
    assert res.returncode == 0, res.stderr
    assert "resuming after epoch" in res.stderr
    rec = json.loads((tmp_path / "normal" / f"{h}-0.json").read_text())
    assert rec["epochs"] == 6 and len(rec["metrics"]["val_top1"]) == 6 and rec["resumed_from_epoch"] >= epoch
