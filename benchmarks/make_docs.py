"""Regenerate docs/benchmarks.md from benchmarks/results/*.json. Never edit that file by hand.

    python benchmarks/make_docs.py           # write docs/benchmarks.md
    python benchmarks/make_docs.py --check   # exit 1 if it is out of date

Result files are written by the benchmark scripts (see ``_results``): one table per benchmark,
one row per file, each row dated by its file and stating the host probe. ``historical.json``
holds figures that were typed into the README before results were files; each names the commit
that recorded it and is rendered in its own section. Output depends only on the files, so the
same results give the same page (``tests/test_docs.py`` checks it).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
OUTPUT = ROOT / "docs" / "benchmarks.md"

#: per benchmark: what it measures and its target, and the figures shown (dotted paths into
#: ``figures``); a benchmark not listed shows its top-level scalar figures.
BENCHMARKS: dict[str, dict[str, Any]] = {
    "space_table": {
        "about": "cold build of the whole search-space table in a fresh process; resolving one raw vector",
        "target": "cold build <= 1 s; resolve <= 20 us",
        "columns": ["cold_build_s_median", "cold_process_wall_s_median", "resolve_raw_vector_us", "meets_targets"],
    },
    "export_speed": {
        "about": "verified fast export (cold: empty piece cache; warm: pieces cached) vs a naive per-model export",
        "target": "ratio >= 20x (onnx), >= 10x (onnx-int8), >= 3x (torchscript)",
        "columns": ["models", "formats.onnx.ratio_cold", "formats.onnx.ratio_warm",
                    "formats.onnx-int8.ratio_cold", "formats.onnx-int8.ratio_warm",
                    "formats.torchscript.ratio_cold", "formats.torchscript.ratio_warm"],
    },
    "harness_overhead": {
        "about": "harness latency / a bare session.run loop of the same model, timed in the same minutes",
        "target": "median ratio within 1.00 +- 0.02",
        "columns": ["models", "runs", "interleave", "rounds", "rewarm_runs", "median_ratio", "min_ratio",
                    "max_ratio", "meets_target"],
    },
    "campaign_cost": {
        "about": "wall time of a campaign / sum over models of runs x latency",
        "target": "ratio <= 1.15",
        "columns": ["models", "runs", "interleave", "rounds", "rewarm_runs", "attempts", "ratio",
                    "ratio_without_warmup", "meets_target"],
    },
    "repeatability": {
        "about": "the same models measured twice, in separate processes",
        "target": "Spearman >= 0.99 and median |rel diff| <= 2 %",
        "columns": ["models", "runs", "interleave", "spearman", "median_abs_rel_diff", "max_abs_rel_diff",
                    "pass2_over_pass1_median", "meets_target"],
    },
    "transport_overhead": {
        "about": "host time per model beyond the device's own time, over a loopback sshd and the ADB emulator",
        "target": "<= 100 ms per model",
        "columns": ["models", "artifact_mb_median", "ssh.overhead_ms_per_model", "ssh.first_model_overhead_ms",
                    "adb.overhead_ms_per_model", "adb.first_model_overhead_ms"],
    },
    "campaign_repeatability": {
        "about": "the same random models in two campaigns (other orders, so other sets): test-retest "
                 "of raw and level-corrected latencies, the anchors' share of the timed runs; where run with "
                 "burst redos: the host check's verdict, sets redone (A, B), the seconds they took, and the "
                 "corrected Spearman of the same run without the redos",
        "target": "corrected Spearman >= 0.95 at --runs 100, >= 0.99 at 1000; anchors <= 10 %",
        "columns": ["models", "runs", "affinity", "raw.spearman", "raw.abs_rel_diff.median", "corrected.spearman",
                    "corrected.abs_rel_diff.median", "anchor_share", "cv_median", "host_check.A.verdict",
                    "redos.A.redone_sets", "redos.B.redone_sets", "redos.A.redo_s", "redos.B.redo_s",
                    "without_redos.corrected.spearman", "meets_target"],
    },
    "within_set_noise": {
        "about": "protocol settings at --runs 100, each measured in two campaigns: corrected test-retest "
                 "and cost (noise_at_default_time scales the median difference to the default's time)",
        "target": "choose the defaults: lowest noise at the default's time with anchors <= 10 %",
        "rows_from": "settings", "row_label": "setting",
        "columns": ["campaign_s", "raw_spearman", "raw_median_rel_diff", "corrected_spearman",
                    "corrected_median_rel_diff", "noise_at_default_time", "anchor_share", "remeasured_share"],
    },
    "survey": {
        "about": "blox-lat survey of cpu-int8 at --runs 100 (15-minute budget; 5 minutes with a cpu predictor as "
                 "prior), scored on 200 other random models measured in two campaigns (mean of the figures "
                 "against each), beside their test-retest agreement; device time accounted / measuring wall time",
        "target": "15 min: Spearman >= test-retest and >= 95 % within +-10 %; prior at 5 min within 0.02 of it; "
                  "accounted device time within 5 % of the wall time",
        "columns": ["holdout_models", "retest.spearman", "retest.within10_pct",
                    "surveys.full.survey.models_measured", "surveys.full.holdout.mean_of_a_b.spearman",
                    "surveys.full.holdout.mean_of_a_b.within10_pct", "surveys.full.holdout.mean_of_a_b.mape_pct",
                    "surveys.full.survey.spent.accounted_over_wall", "surveys.prior.survey.models_measured",
                    "surveys.prior.holdout.mean_of_a_b.spearman", "surveys.prior.holdout.mean_of_a_b.within10_pct",
                    "surveys.prior.survey.spent.accounted_over_wall", "meets_targets"],
    },
    "predictor_accuracy": {
        "about": "latency predictor on the committed data (benchmarks/data/predictor: 1,000 cpu models, 256 "
                 "measured twice, 300 cpu-int8, block pieces), per latency kind: held-out agreement beside "
                 "test-retest, training sizes, transfer (mean of splits) and pieces",
        "target": "predicted >= test-retest (Spearman and MAPE); 135-model plan within 0.02 of 911; pieces + 20 "
                  "within 0.05; int8 transfer from 50 within 0.03; 90 % intervals cover 85-95 %; fit <= 10 s, "
                  "predict all <= 1 s",
        "rows_from": ["raw", "corrected"], "row_label": "latency",
        "columns": ["vs_retest.test_retest.spearman", "vs_retest.predicted_vs_first.spearman",
                    "vs_retest.test_retest.mape_pct", "vs_retest.predicted_vs_first.mape_pct",
                    "vs_retest.predicting_beats_remeasuring", "sizes.135.auto.spearman", "sizes.911.auto.spearman",
                    "sizes.911.auto.within10_pct", "sizes.911.auto.coverage90_pct", "pieces.pieces.spearman",
                    "transfer.transfer.spearman", "transfer.int8_fit.spearman", "timing.fit_s",
                    "timing.predict_all_s"],
    },
    "compare_calibration": {
        "about": "compare on null retests (the same models in two anchored campaigns at --runs 100): models "
                 "called changed at 95 % simultaneous confidence, per-model 95 % interval coverage, and 10 "
                 "models slowed by 10 % in the second campaign (mean over 20 random choices)",
        "target": "corrected: <= 1 % changed; coverage 93-97 %; >= 9 of 10 found, <= 2 others",
        "rows_from": "pairs", "row_label": "retest",
        "columns": ["a", "raw.spearman", "raw.changed_pct", "raw.coverage95_pct", "corrected.spearman",
                    "corrected.changed_pct", "corrected.coverage95_pct", "injection.found_mean",
                    "injection.others_flagged_max", "meets_targets"],
    },
    "busy_host": {
        "about": "the same random models in two campaigns (other orders) at --runs 100 with default flags: quiet, "
                 "one CPU-bound process per core, and one on the first core with the worker pinned to the last "
                 "(--affinity); test-retest through harness.stand, noisy records, the host check's verdicts",
        "target": "the docs can say what a busy host costs and what restores it; measure warns on busy, not on quiet",
        "rows_from": "conditions", "row_label": "condition",
        "columns": ["models", "raw.spearman", "raw.median_abs_rel_diff", "corrected.spearman",
                    "corrected.median_abs_rel_diff", "noisy", "host_check", "warned", "wall_s"],
    },
    "dataset_speed": {
        "about": "full-size synthetic release: build, cold load, per-query cost",
        "target": "build <= 30 s; cold load <= 0.5 s; queries <= 10 us",
        "columns": ["models", "build_s", "build_cpu_s", "load_avg_before_build", "cold_load_s", "latency_us",
                    "val_acc_us", "test_acc_us", "meets_targets"],
    },
    "profile_accuracy": {
        "about": "blox-lat profile on cpu: the per-block sum of layer times (profiler on) over the protocol latency "
                 "timed in the same worker, for random models (ratio); the profiler's overhead (a profiled run over "
                 "the protocol latency, less 1); Spearman of the profiled per-block costs of a balanced plan against "
                 "a predictor fitted on the committed cpu-a journal, over the stage-block pairs, centred per stage",
        "target": "every ratio within 1.00 +- 0.15; Spearman reported",
        "columns": ["accuracy.models", "ratio_median", "ratio_min", "ratio_max", "accuracy.within_15pct",
                    "overhead_median", "agreement.models", "agreement.pairs", "spearman_135",
                    "agreement.spearman_stage0", "agreement.spearman_stage1", "agreement.spearman_stage2",
                    "meets_target"],
    },
}


def lookup(figures: dict[str, Any], path: str) -> Any:
    """``a.b.c`` into nested dicts; keys may contain dots' neighbours such as ``onnx-int8``."""
    value: Any = figures
    for part in path.split("."):
        if not isinstance(value, dict) or part not in value:
            return None
        value = value[part]
    return value


def cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, list):
        return ", ".join(cell(v) for v in value)
    return str(value).replace("|", "\\|")


def table(header: list[str], rows: list[list[str]]) -> list[str]:
    return ["| " + " | ".join(header) + " |", "|" + "---|" * len(header),
            *("| " + " | ".join(r) + " |" for r in rows)]


def probe_text(probe: Any) -> str:
    if isinstance(probe, list):
        return f"{min(probe):.3g}-{max(probe):.3g} s" if probe else "-"
    return f"{probe:.3g} s" if isinstance(probe, (int, float)) else "-"


def load(folder: Path) -> tuple[dict[str, list[tuple[str, dict]]], list[dict]]:
    runs: dict[str, list[tuple[str, dict]]] = {}
    historical: list[dict] = []
    for path in sorted(folder.glob("*.json")):
        doc = json.loads(path.read_text())
        if doc.get("kind") == "historical":
            historical.extend(doc["entries"])
            continue
        runs.setdefault(doc["benchmark"], []).append((path.name, doc))
    return runs, historical


def sub_rows(spec: dict[str, Any], figures: dict[str, Any]) -> list[tuple[str | None, dict[str, Any]]]:
    """The rows one result file gives: itself, or (``rows_from``) one row per entry of a nested
    dict (a key naming it) or per listed key."""
    source = spec.get("rows_from")
    if source is None:
        return [(None, figures)]
    if isinstance(source, str):
        return [(k, v) for k, v in (figures.get(source) or {}).items() if isinstance(v, dict)]
    return [(k, figures[k]) for k in source if isinstance(figures.get(k), dict)]


def render_runs(name: str, files: list[tuple[str, dict]]) -> list[str]:
    spec = BENCHMARKS.get(name, {})
    columns = spec.get("columns") or sorted({k for _, d in files for k, v in d["figures"].items()
                                             if isinstance(v, (int, float, str, bool))})
    out = [f"### `benchmarks/{name}.py`", ""]
    if spec:
        out += [f"{spec['about']}. Target: {spec['target']}.", ""]
    rows = []
    hosts = []
    for fname, doc in sorted(files, key=lambda f: (f[1]["date"], f[0])):
        host = doc.get("host", {})
        commit = (doc.get("git") or {}).get("commit") or "-"
        dirty = "+" if (doc.get("git") or {}).get("dirty") else ""
        lead = [f"[{doc['date'][:10]}](../benchmarks/results/{fname})", f"`{commit[:10]}`{dirty}",
                probe_text(doc.get("cpu_probe_s"))]
        for label, figures in sub_rows(spec, doc["figures"]):
            rows.append([*lead, *([label] if label is not None else []), *(cell(lookup(figures, c)) for c in columns)])
        hosts.append(f"- {fname}: {host.get('cpu_model') or '?'}, {host.get('cpu_count') or '?'} CPUs, "
                     f"load {cell(host.get('load_avg'))}, Python {host.get('python') or '?'}, "
                     f"torch {cell((host.get('versions') or {}).get('torch'))}, "
                     f"onnxruntime {cell((host.get('versions') or {}).get('onnxruntime'))}")
    label = [spec["row_label"]] if "rows_from" in spec else []
    out += table(["date (file)", "commit", "CPU probe", *label, *columns], rows)
    out += ["", "Hosts:", "", *hosts, ""]
    return out


def render_historical(entries: list[dict]) -> list[str]:
    out = ["## Historical results", "",
           "Figures typed into the README before benchmarks wrote result files, entered by hand in",
           "[`benchmarks/results/historical.json`](../benchmarks/results/historical.json). Each row is",
           "dated by, and names, the commit whose README first recorded it; settings and probes are",
           "as that text stated them. They were measured on a shared 2-core virtual machine whose",
           "speed drifted, and were not re-measured.", ""]
    by_bench: dict[str, list[dict]] = {}
    for e in entries:
        by_bench.setdefault(e["benchmark"], []).append(e)
    for name in sorted(by_bench):
        out += [f"### {name}", ""]
        rows = []
        for e in sorted(by_bench[name], key=lambda e: (e["date"], e["source_commit"], e["setting"])):
            figs = "; ".join(f"{k} {cell(v)}" for k, v in e["figures"].items())
            if e.get("note"):
                figs += f" ({cell(e['note'])})"
            probe = f"{e['cpu_probe_s']} s" if e.get("cpu_probe_s") else "-"
            rows.append([e["date"][:16].replace("T", " "), f"`{e['source_commit'][:10]}`", probe, cell(e["setting"]), figs])
        out += table(["date", "source commit", "CPU probe", "setting", "figures"], rows)
        out.append("")
    return out


def render(folder: Path = RESULTS) -> str:
    runs, historical = load(folder)
    out = ["# Benchmark results", "",
           "<!-- Generated by `python benchmarks/make_docs.py` from benchmarks/results/*.json."
           " Do not edit by hand. -->", "",
           "Every script in `benchmarks/` writes its result to `benchmarks/results/<name>-<UTC date>.json`",
           "with the date, git commit (`+`: uncommitted changes), host facts and the CPU probe: a fixed",
           "single-thread workload (`benchmarks/_probe.py`) timed beside the figures, so that runs on a",
           "host whose speed drifts can be compared (same code, twice the probe, about twice the time).",
           "Ratios are measured within one run. Regenerate this page with",
           "`python benchmarks/make_docs.py`.", "", "## Result files", ""]
    if not runs:
        out += ["No result files yet.", ""]
    for name in sorted(runs):
        out += render_runs(name, runs[name])
    if historical:
        out += render_historical(historical)
    return "\n".join(out).rstrip() + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true", help="exit 1 if docs/benchmarks.md is out of date")
    args = ap.parse_args()
    text = render()
    if args.check:
        if not OUTPUT.exists() or OUTPUT.read_text() != text:
            sys.exit("docs/benchmarks.md is out of date: run python benchmarks/make_docs.py")
        return
    OUTPUT.write_text(text)
    print(f"wrote {OUTPUT.relative_to(ROOT)}", file=sys.stderr)


if __name__ == "__main__":
    main()
