"""``blox-lat train normal|distill|finetune``: the training pipeline (records for the dataset)."""

from __future__ import annotations

import sys
import time

import click

from blox_lat import space as sp
from blox_lat.cli._output import check_out_dir, emit_json, emit_table, json_option, progress_bar


def _common(setting: str):
    """The options every run takes (defaults: table 4 of the Blox paper, shown in --help)."""

    def deco(fn):
        opts = [
            click.argument("selector"),
            click.option("--data", "data", metavar="PATH", default=None,
                         help="CIFAR-100: cifar-100-binary.tar.gz or its folder (default: $BLOX_LAT_CIFAR100)."),
            click.option("--allow-pickle", is_flag=True,
                         help="Also read the python version (cifar-100-python.tar.gz): its files are pickles, "
                              "unpickled (restricted to arrays and strings) only with this flag."),
            click.option("--out", "-o", "out", required=True, metavar="DIR", help="Output folder for records, weights, checkpoints."),
            click.option("--epochs", type=int, default=None, help={"normal": "Epochs (default 200).",
                                                                  "distill": "Epochs per block (default 1; the paper uses 1, 10, 50).",
                                                                  "finetune": "Epochs (default 10; the paper uses 10, 50, 200)."}[setting]),
            click.option("--device", default=None, help="cuda, cuda:N or cpu (default: cuda when available)."),
            click.option("--shard", default=None, metavar="k/N", help="Run only the k-th of N slices (one job per GPU)."),
            click.option("--seed", type=int, default=0, show_default=True, help="Training seed (model init, order, augmentation)."),
            click.option("--lr", type=float, default=None, help="Learning rate (default: table 4)."),
            click.option("--batch-size", type=int, default=None, help="Batch size (default 256)."),
            click.option("--weight-decay", type=float, default=None, help="Weight decay (default 5e-4)."),
            click.option("--split-seed", type=int, default=0, show_default=True, help="Seed of the 45k/5k train/val split."),
            click.option("--limit-train", type=int, default=None, hidden=True),
            click.option("--limit-eval", type=int, default=None, hidden=True),
            click.option("--no-augment", is_flag=True, default=False, hidden=True),
            json_option("Print a JSON summary of every model instead of a table."),
        ]
        for opt in reversed(opts):
            fn = opt(fn)
        return fn

    return deco


def _teacher_option(required: bool):
    return click.option("--teacher", metavar="PT", required=required,
                        help="Teacher weights saved by `blox-lat train normal` (OUT/normal/weights/<hash>-<seed>.pt).")


def _fraction_option(fn):
    return click.option("--fraction", type=click.Choice(["1/27", "1/9", "1/3"]), default=None,
                        help="Low-fidelity run: a fixed fraction of the training data with a KD loss (needs --teacher).")(fn)


class _Progress:
    """Progress on stderr: one bar per model (epoch, loss, accuracy, ETA) plus a line per epoch."""

    def __init__(self, total: int, quiet: bool = False) -> None:
        from rich.console import Console
        self.console = Console(stderr=True)
        self.total, self.index = total, 0
        self.progress = progress_bar("{task.description}",
                                     "epoch {task.fields[epoch]} loss {task.fields[loss]} acc {task.fields[acc]}",
                                     console=self.console)
        self.task = None

    def __enter__(self):
        self.progress.__enter__()
        return self

    def __exit__(self, *exc):
        return self.progress.__exit__(*exc)

    def __call__(self, e: dict) -> None:
        kind = e["event"]
        if kind == "start":
            self.index += 1
            if self.task is not None:
                self.progress.remove_task(self.task)
            done = e["start_epoch"] * e["batches"]
            self.task = self.progress.add_task(f"[{self.index}/{self.total}] {e['model']}", total=e["epochs"] * e["batches"],
                                               completed=done, epoch=f"{e['start_epoch'] + 1}/{e['epochs']}", loss="-", acc="-")
            if e["start_epoch"]:
                self.console.print(f"{e['name']}: resuming after epoch {e['start_epoch']}")
        elif kind == "batch" and self.task is not None:
            task = self.progress.tasks[-1]
            epochs = task.total // e["batches"]
            self.progress.update(self.task, advance=1, epoch=f"{e['epoch'] + 1}/{epochs}", loss=f"{e['loss']:.4f}",
                                 acc="-" if e.get("acc") is None else f"{e['acc']:.1f}%")
        elif kind == "epoch":
            parts = [f"{k} {v:.4g}" for k, v in e.items() if isinstance(v, float)]
            self.console.print(f"{e['name']} epoch {e['epoch'] + 1}/{e['epochs']}: " + ", ".join(parts))
        elif kind == "skip":
            self.index += 1
            self.console.print(f"{e['name']}: {e['status']} (record exists)")
        elif kind == "failed":
            self.console.print(f"{e['name']}: failed: {e['reason']}")


def check_teacher_fraction(teacher: str | None, fraction: str | None) -> None:
    """A normal run takes --teacher and --fraction together (a low-fidelity KD run) or neither."""
    if fraction and not teacher:
        raise click.UsageError("--fraction trains with a KD loss: pass --teacher OUT/normal/weights/<hash>-<seed>.pt")
    if teacher and not fraction:
        raise click.UsageError("--teacher only applies to normal runs with --fraction")


def _setup(selector, data, shard, device, allow_pickle):
    from blox_lat import training as tr

    archs = sp.shard(sp.select(selector), shard)
    device = tr.resolve_device(device)
    dataset = tr.load_cifar100(data, allow_pickle=allow_pickle)
    return archs, device, dataset


def _config(setting, *, epochs, lr, batch_size, weight_decay, seed, split_seed, limit_train, limit_eval, no_augment, **extra):
    from blox_lat import training as tr

    return tr.default_config(setting, epochs=epochs, lr=lr, batch_size=batch_size, weight_decay=weight_decay, seed=seed,
                             split_seed=split_seed, limit_train=limit_train, limit_eval=limit_eval,
                             augment=False if no_augment else None, **extra)


def _report(results, as_json: bool, started: float) -> None:
    rows = [r.to_dict() for r in results]
    counts = {s: sum(r.status == s for r in results) for s in ("done", "skipped", "failed")}
    if as_json:
        emit_json({"summary": {**counts, "seconds": round(time.perf_counter() - started, 3)}, "results": rows})
    else:
        table = []
        for r in results:
            s = r.summary or {}
            table.append({"name": r.name, "status": r.status,
                          **{k: (f"{v:.4g}" if isinstance(v, float) else v) for k, v in s.items()}, "record": r.record})
        cols = ["name", "status", *sorted({k for row in table for k in row} - {"name", "status", "record"}), "record"]
        emit_table(table, cols)
    if counts["failed"]:
        sys.exit(1)


@click.group()
def train() -> None:
    """Train models for the dataset: normal, blockwise distillation, fine-tuning (table 4).

    Each model (or distilled block) gets one JSON record in --out, written atomically; a
    rerun skips finished models and a killed run continues from its last epoch checkpoint.
    `blox-lat dataset build --from OUT` turns the records into dataset sections.
    """


@train.command()
@_common("normal")
@_teacher_option(required=False)
@_fraction_option
def normal(selector, data, out, shard, device, teacher, fraction, as_json, **kw) -> None:
    """Train the models SELECTOR names from scratch (SGD 0.9, lr 0.01 cosine, CE, 200 epochs).

    Records go to OUT/normal/<hash>-<seed>.json and final weights, usable as a teacher, to
    OUT/normal/weights/<hash>-<seed>.pt. With --fraction the run is a low-fidelity KD run
    from --teacher on a fixed subset (OUT/lowfi-normal-<f>/, kind training-lowfi).
    """
    from blox_lat import training as tr

    started = time.perf_counter()
    check_teacher_fraction(teacher, fraction)
    check_out_dir(out)  # before the data is read: a read-only --out used to fail after an epoch
    archs, device, dataset = _setup(selector, data, shard, device, kw.pop("allow_pickle"))
    cfg = _config("normal", fraction=fraction, **kw)
    t = tr.load_teacher(teacher, device) if teacher else None
    with _Progress(len(archs)) as progress:
        results = tr.train_models("normal", archs, dataset, out, cfg, device=device, teacher=t, progress=progress)
    _report(results, as_json, started)


@train.command()
@_common("distill")
@_teacher_option(required=True)
@click.option("--init", "init", type=click.Choice(["random", "remap"]), default="random", show_default=True,
              help="remap: start each candidate from the teacher's block (layer-wise, then channel-wise prefix copy).")
def distill(selector, data, out, shard, device, teacher, init, as_json, **kw) -> None:
    """Distil the blocks the models SELECTOR names from --teacher (MSE, Adam 0.005 cosine).

    Every (stage, block) used by a selected model is trained to map the teacher's input of
    that stage's cell to the teacher's cell output (`all`: the 45 blocks of each stage).
    Records (final distillation loss, change of the teacher's val accuracy with the block
    swapped in) go to OUT/distill-<t8>-<epochs>/s<stage>-b<block>.json and the block library
    to its blocks/ folder. --shard splits the blocks, not the models.
    """
    from blox_lat import training as tr

    started = time.perf_counter()
    check_out_dir(out)
    archs = sp.select(selector)
    blocks = tr.candidate_blocks(archs)
    if shard is not None:
        k, n = sp.parse_shard(shard)
        blocks = [b for b in blocks if (b[0] * 45 + b[1]) % n == k - 1]
    device = tr.resolve_device(device)
    dataset = tr.load_cifar100(data, allow_pickle=kw.pop("allow_pickle"))
    cfg = _config("distill", init=init, **kw)
    t = tr.load_teacher(teacher, device)
    with _Progress(len(blocks)) as progress:
        results = tr.distill_blocks(blocks, dataset, out, cfg, teacher=t, device=device, progress=progress)
    _report(results, as_json, started)


@train.command()
@_common("finetune")
@_teacher_option(required=True)
@click.option("--library", required=True, metavar="DIR", help="Distill folder holding blocks/ (OUT/distill-<t8>-<E>).")
@_fraction_option
def finetune(selector, data, out, shard, device, teacher, library, fraction, as_json, **kw) -> None:
    """Fine-tune students built from distilled blocks with KD from --teacher (alpha 0.9, T 4).

    The student of each model SELECTOR names has the teacher's stem, reductions and head and
    the library's distilled cells; Adam lr 5e-5 cosine, 10 epochs by default. Records go to
    OUT/finetune-<t8>-<epochs>/<hash>-<seed>.json.
    """
    from blox_lat import training as tr

    started = time.perf_counter()
    check_out_dir(out)
    archs, device, dataset = _setup(selector, data, shard, device, kw.pop("allow_pickle"))
    cfg = _config("finetune", fraction=fraction, **kw)
    t = tr.load_teacher(teacher, device)
    with _Progress(len(archs)) as progress:
        results = tr.train_models("finetune", archs, dataset, out, cfg, device=device, teacher=t, library=library,
                                  progress=progress)
    _report(results, as_json, started)
