"""``blox-lat dataset``: build, verify, diff, inspect, export and query benchmark releases."""

from __future__ import annotations

import click

from blox_lat.cli._output import emit_json, emit_pairs, emit_table, json_option


@click.group()
def dataset() -> None:
    """Versioned benchmark releases (Parquet sections + dataset.json)."""


@dataset.command()
@click.option("--from", "sources", multiple=True, required=True, metavar="DIR",
              help="Campaign directory, training-records folder or Blox file (repeatable).")
@click.option("--out", "out", required=True, type=click.Path(), help="Release directory to create (must not exist).")
@click.option("--version", "version", required=True, metavar="X.Y.Z", help="Dataset version.")
@click.option("--blox-format", is_flag=True, help="Also write the Blox reference layout under RELEASE/blox/.")
@click.option("--allow-pickle", is_flag=True, help="Read pickle payloads of Blox files (unpickling runs code).")
@click.option("--no-raw", is_flag=True, help="Leave out the raw samples sections (bench-raw/<device>).")
@click.option("--no-static", is_flag=True, help="Leave out the static section (params, FLOPs, vectors of all 91,125 models).")
@click.option("--jobs", type=click.IntRange(1, 64), default=None,
              help="Processes reading training records and journals (default: CPU count).")
@click.option("--pred", "preds", multiple=True, metavar="PREDICTOR.json",
              help="Add the predictor's pred/<device> section: predicted latency of every model, kept apart "
                   "from the measured bench/<device> (repeatable, one per device).")
@click.option("--pred-level", type=click.FloatRange(0, 1, min_open=True, max_open=True), default=0.9,
              show_default=True, help="Interval level of the --pred sections.")
@click.option("--profile", "profiles", multiple=True, metavar="DIR",
              help="Add profile/<device> sections from a folder of 'blox-lat profile' (its profiles.jsonl; "
                   "repeatable).")
@json_option()
def build(sources, out, version, blox_format, allow_pickle, no_raw, no_static, jobs, preds, pred_level, profiles,
          as_json) -> None:
    """Build release VERSION at OUT from journals, training records and Blox files.

    Example: blox-lat dataset build --from runs/cpu --from records --out releases/1.0.0 --version 1.0.0
    """
    from blox_lat import dataset as ds

    predictions = []
    if preds:
        from blox_lat import predict

        predictions = [predict.pred_section(p, level=pred_level) for p in preds]
    result = ds.build(list(sources), out, version, allow_pickle=allow_pickle, blox_format=blox_format, raw=not no_raw,
                      static=not no_static, jobs=jobs, predictions=predictions, profiles=list(profiles))
    if as_json:
        emit_json(result.to_dict())
        return
    emit_table([{"section": k, "rows": v} for k, v in result.sections.items()], ["section", "rows"])
    pairs = [("release", result.path), ("version", result.version), ("inputs", result.inputs)]
    if result.blox_files:
        pairs.append(("blox files", len(result.blox_files)))
    emit_pairs(pairs)


@dataset.command()
@click.argument("release", type=click.Path())
@json_option()
def verify(release, as_json) -> None:
    """Check every file of RELEASE against the manifest's sha256 (exit 2 on any mismatch)."""
    from blox_lat import dataset as ds

    report = ds.verify(release)
    if as_json:
        emit_json(report.to_dict())
    else:
        emit_table([{"file": f, "status": s} for f, s in report.checked], ["file", "status"])
    if not report.ok:
        problems = "; ".join(f"{f}: {s}" for f, s in report.problems[:3])
        raise ds.ChecksumError(f"{len(report.problems)} of {len(report.checked)} files fail verification ({problems}); "
                               "restore the release from its source")


@dataset.command()
@click.argument("a", type=click.Path())
@click.argument("b", type=click.Path())
@json_option()
def diff(a, b, as_json) -> None:
    """List sections and rows added, removed or changed from release A to release B."""
    from blox_lat import dataset as ds

    report = ds.diff(a, b)
    if as_json:
        emit_json(report.to_dict())
        return
    rows = [{"section": s, "change": "added"} for s in report.added]
    rows += [{"section": s, "change": "removed"} for s in report.removed]
    for name, d in report.changed.items():
        rows.append({"section": name, "change": "changed", "rows_added": d.rows_added, "rows_removed": d.rows_removed,
                     "rows_changed": d.rows_changed, "metadata": "changed" if d.metadata_changed else ""})
    if report.identical:
        click.echo("identical: no section or row differs")
        return
    emit_table(rows, ["section", "change", "rows_added", "rows_removed", "rows_changed", "metadata"])


@dataset.command()
@click.argument("release", type=click.Path())
@json_option()
def info(release, as_json) -> None:
    """Version, schema and sections of RELEASE."""
    from blox_lat import dataset as ds

    data = ds.info(release)
    if as_json:
        emit_json(data)
        return
    emit_pairs([("release", data["path"]), ("version", data["dataset_version"]), ("schema", data["schema_version"]),
                ("search space", data["search_space"]), ("builder", data["provenance"].get("builder")),
                ("git commit", data["provenance"].get("git_commit"))])
    emit_table([{"section": k, "rows": v["rows"], "bytes": v["bytes"]} for k, v in data["sections"].items()],
               ["section", "rows", "bytes"])


@dataset.command()
@click.argument("name")
@click.option("--release", "release", default=".", show_default=True, type=click.Path(), envvar="BLOX_LAT_RELEASE",
              help="Release directory (or $BLOX_LAT_RELEASE).")
@click.option("--device", default=None, help="Only this device's latency (default: every device).")
@click.option("--seed", default=None, help="Training seed (default: the smallest).")
@click.option("--latency", "latency", type=click.Choice(["auto", "raw", "corrected"]), default=None,
              help="Which measured latency to report: raw (the protocol latency), corrected (divided by the "
                   "level of its set; refused when a measured value in scope has none) or auto (corrected when "
                   "every measured value in scope has one). Default: auto.")
@click.option("--corrected", is_flag=True,
              help="Level-corrected latencies only: a model measured without anchor models (or a release "
                   "older than schema 4) gives null, never its raw latency; so does a prediction of raw latency.")
@json_option()
def query(name, release, device, seed, latency, corrected, as_json) -> None:
    """Everything RELEASE knows about model NAME (index, hash, vector or block string).

    Each latency says its source: measured (bench/<device>) or predicted (pred/<device>),
    and which latency it is (raw or corrected); the two are never merged into one value. The
    bench/<device> section lists the standard errors (latency_se_ms, latency_corrected_se_ms).
    """
    from blox_lat import dataset as ds

    if corrected and latency not in (None, "corrected"):
        raise click.UsageError(f"--corrected asks for the corrected latency; it cannot go with --latency {latency}")
    rel = ds.open(release)
    if device is not None and device not in {*rel.devices, *rel.predicted_devices, *rel.profiled_devices}:
        known = sorted({*rel.devices, *rel.predicted_devices, *rel.profiled_devices})
        raise ds.DeviceNotInReleaseError(f"release {rel.version} has no measurements or predictions for device "
                                         f"{device!r}; it has: {', '.join(known) or 'none'}")
    data = rel.full_info(name, seed=seed)
    if device is not None:
        data["sections"] = {k: v for k, v in data["sections"].items()
                            if not k.startswith(("bench/", "bench-raw/", "pred/", "profile/")) or k.split("/", 1)[1] == device}
    kind = "corrected" if corrected else _latency_kind(rel, data["model_index"], device, latency or "auto")
    data["latency_kind"] = kind
    data["latency"] = _latencies(rel, data["model_index"], device, kind, only_corrected=corrected or latency == "corrected")
    if as_json:
        emit_json(data)
        return
    pairs = [("index", data["model_index"]), ("hash", data["model_hash"]), ("name", data["name"])]
    pairs += [(f"latency {e['device']} ({e['source']}, {e['latency']})", _latency_text(e)) for e in data["latency"]]
    for section, values in data["sections"].items():
        for key, value in values.items():
            if isinstance(value, list) and len(value) > 6:
                value = _list_summary(value, section, data["model_index"], release)
            pairs.append((f"{section}.{key}", value))
    emit_pairs(pairs)


def _list_summary(values: list, section: str, index: int, release: str) -> str:
    """A long list in one line: its size and spread, and where to see all of it (samples, group means)."""
    numbers = sorted(v for v in values if isinstance(v, (int, float)) and not isinstance(v, bool))
    if len(numbers) != len(values):
        return f"[{len(values)} values]"
    middle = numbers[len(numbers) // 2]
    where = f"; all of them: blox-lat stats {index} --from {release}" if section.startswith("bench-raw/") else ""
    return f"[{len(values)} values: min {numbers[0]:.4g}, median {middle:.4g}, max {numbers[-1]:.4g}{where}]"


def _measured_devices(rel, device: str | None) -> list[str]:
    return rel.devices if device is None else [d for d in rel.devices if d == device]


def _latency_kind(rel, index: int, device: str | None, requested: str) -> str:
    """``raw`` or ``corrected`` for ``--latency requested`` over the model's measured latencies
    in scope (:func:`~blox_lat.harness.resolve_latency_kind`): ``auto`` is corrected when every
    one has a corrected latency; a model measured nowhere in scope has nothing to resolve."""
    from blox_lat.harness import resolve_latency_kind

    values = [rel.latency(index, d, corrected=True) for d in _measured_devices(rel, device)
              if rel.latency(index, d) is not None]
    if not values:
        return "corrected" if requested == "corrected" else "raw"
    return resolve_latency_kind(requested, values)


def _latencies(rel, index: int, device: str | None, kind: str, only_corrected: bool) -> list[dict]:
    """One entry per measured and per predicted latency of the model, each naming its source and
    which latency it is (``kind`` for the measured ones; a prediction is of the latency its
    predictor was fitted on, null with ``only_corrected`` when that is raw)."""
    corrected = kind == "corrected"
    out = []
    for d in _measured_devices(rel, device):
        out.append({"device": d, "source": "measured", "section": f"bench/{d}", "latency": kind,
                    "latency_ms": rel.latency(index, d, corrected=corrected)})
    for d in rel.predicted_devices if device is None else [d for d in rel.predicted_devices if d == device]:
        p = rel.prediction(index, d)
        predicts = p["latency"] if p else None
        ok = p is not None and (not only_corrected or predicts == "corrected")
        out.append({"device": d, "source": "predicted", "section": f"pred/{d}", "latency": predicts,
                    "latency_ms": p["pred_ms"] if ok else None, "lo_ms": p["lo_ms"] if ok else None,
                    "hi_ms": p["hi_ms"] if ok else None, "level": p["level"] if p else None,
                    "in_training_set": p["measured"] if p else None, "method": p["method"] if p else None})
    return out


def _latency_text(entry: dict) -> str:
    if entry["latency_ms"] is None:
        return "null"
    text = f"{entry['latency_ms']:.4f} ms"
    if entry["source"] == "predicted":
        text += (f", {entry['level']:.0%} interval {entry['lo_ms']:.4f}-{entry['hi_ms']:.4f} ms "
                 f"({entry['method']}{', in the training set' if entry['in_training_set'] else ''})")
    return text


@dataset.command("export-blox")
@click.argument("release", type=click.Path())
@click.option("--out", "out", required=True, type=click.Path(), help="Directory for the blox-* files (must not exist).")
@json_option("Print the folder and the files written as JSON.")
def export_blox(release, out, as_json: bool) -> None:
    """Write the Blox reference files (blox-info, blox-base-{seed}, ...) of RELEASE into OUT."""
    from pathlib import Path

    from blox_lat import dataset as ds

    if Path(out).exists():
        raise ds.ReleaseExistsError(f"{out} already exists; pick a new directory")
    names = ds.export_blox(release, out)
    if as_json:
        emit_json({"release": str(release), "out": str(out), "files": list(names)})
        return
    for name in names:
        click.echo(name)


__all__ = ["dataset"]
