"""Reports of an ablation study: `results.csv`, `results.md` (mean ± std over seeds, differences to the
baseline, and the linear probe's top-1 on each class), PNG plots (metrics against variant with error bars, loss
curves) and TensorBoard hparams entries."""

import csv
import json
import math
import statistics
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt  # noqa: E402
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator  # noqa: E402
from torch.utils.tensorboard import SummaryWriter  # noqa: E402

from ..evaluation import mean_per_class  # noqa: E402

CSV_COLUMNS = (
    "variant", "axis", "value", "baseline", "seed", "status", "error", "linear_probe_top1", "knn_top1",
    "final_loss", "train_seconds", "steps", "compression_factor", "psnr_db", "linear_probe_per_class_top1", "run_dir",
)
PER_CLASS = "linear_probe_per_class_top1"  # {class name: top-1 %} of a run, a JSON object in results.csv
# (row key, table heading, digits)
METRICS = (
    ("linear_probe_top1", "linear probe top-1 (%)", 1),
    ("knn_top1", "k-NN top-1 (%)", 1),
    ("final_loss", "final SSL loss", 3),
    ("train_seconds", "training time (s)", 0),
)
COMPRESSION_METRICS = (
    ("compression_factor", "compression factor", 1),
    ("psnr_db", "PSNR (dB)", 2),
)


def write_csv(rows, path):
    """One row per run, the columns of `CSV_COLUMNS`."""
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=CSV_COLUMNS, extrasaction="ignore")
        writer.writeheader()
        writer.writerows({**row, PER_CLASS: json.dumps(row[PER_CLASS])} if PER_CLASS in row else row for row in rows)


def _mean_std(values):
    if not values:
        return math.nan, math.nan
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else 0.0


def aggregate(variants, rows):
    """Per variant (in study order): its rows, the mean and std of every metric over its finished seeds, and the
    mean over them of each class's linear-probe top-1 (`per_class`, {class name: top-1 %})."""
    summary = []
    for variant in variants:
        runs = [r for r in rows if r["variant"] == variant.name]
        ok = [r for r in runs if r["status"] == "ok"]
        stats = {key: _mean_std([r[key] for r in ok]) for key, *_ in METRICS + COMPRESSION_METRICS}
        classes = [r[PER_CLASS] for r in ok if PER_CLASS in r]  # results of older runs may lack it
        per_class = mean_per_class(classes) if classes else {}
        errors = sorted({r["error"] for r in runs if r["status"] != "ok"})
        summary.append({"variant": variant, "runs": len(runs), "ok": len(ok), "stats": stats, "per_class": per_class,
                        "errors": errors})
    return summary


def _cell(mean, std, digits):
    return "n/a" if math.isnan(mean) else f"{mean:.{digits}f} ± {std:.{digits}f}"


def _delta(mean, base, digits):
    if math.isnan(mean) or math.isnan(base):
        return "n/a"
    return f"{round(mean - base, digits) + 0.0:+.{digits}f}"  # + 0.0: a difference that rounds to zero reads +0


def markdown_table(study, summary):
    """The study's table: every variant's mean ± std over seeds and its difference to the baseline."""
    metrics = METRICS + (COMPRESSION_METRICS if study == "compression" else ())
    baseline = next((s for s in summary if s["variant"].baseline), summary[0])
    head = ["variant"]
    for _, heading, _ in metrics:
        head += [heading, "Δ"]
    head += ["runs ok"]
    lines = ["| " + " | ".join(head) + " |", "|" + " --- |" * len(head)]
    for entry in summary:
        variant = entry["variant"]
        name = f"**{variant.name}** (baseline)" if variant.baseline else variant.name
        cells = [name]
        for key, _, digits in metrics:
            mean, std = entry["stats"][key]
            delta = "" if variant.baseline else _delta(mean, baseline["stats"][key][0], digits)
            cells += [_cell(mean, std, digits), delta]
        status = f"{entry['ok']}/{entry['runs']}"
        if entry["errors"]:  # the first distinct error, shortened (results.csv holds every run's)
            status += " failed: " + entry["errors"][0].replace("|", "/")[:160]
        cells.append(status)
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def per_class_table(summary):
    """The linear probe's top-1 on each class (columns) for every variant with finished runs (mean over seeds), and
    the baseline's difference per class; "" when no run has per-class scores."""
    names = sorted({name for entry in summary for name in entry["per_class"]})
    if not names:
        return ""
    baseline = next((s for s in summary if s["variant"].baseline), summary[0])["per_class"]
    lines = ["| variant | " + " | ".join(names) + " |", "|" + " --- |" * (len(names) + 1)]
    for entry in summary:
        if not entry["per_class"]:
            continue
        variant, scores = entry["variant"], entry["per_class"]
        cells = [f"**{variant.name}** (baseline)" if variant.baseline else variant.name]
        for name in names:
            mean = scores.get(name, math.nan)
            delta = "" if variant.baseline else f" ({_delta(mean, baseline.get(name, math.nan), 1)})"
            cells.append(("n/a" if math.isnan(mean) else f"{mean:.1f}") + delta)
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def write_markdown(study, summary, path, command, budget):
    text = [
        f"# Ablation study: {study}",
        "",
        f"Command: `{command}`",
        "",
        f"Budget per run: {budget}. Mean ± std over seeds; Δ is the difference of the means to the baseline. "
        "Probes are scored on a held-out half of the labelled videos (fitted on the other half).",
        "",
        markdown_table(study, summary),
        "",
    ]
    by_class = per_class_table(summary)
    if by_class:
        text += [
            "Linear probe top-1 (%) on each class's held-out videos, mean over seeds (the baseline's difference in "
            "brackets):",
            "",
            by_class,
            "",
        ]
    Path(path).write_text("\n".join(text))


def plot_metrics(study, summary, folder):
    """One PNG per metric: mean ± std over seeds against variant. Returns the written paths."""
    metrics = METRICS + (COMPRESSION_METRICS if study == "compression" else ())
    names = [s["variant"].name for s in summary]
    paths = []
    for key, heading, _ in metrics:
        means = [s["stats"][key][0] for s in summary]
        stds = [s["stats"][key][1] for s in summary]
        figure, axes = plt.subplots(figsize=(max(4.0, 0.9 * len(names) + 2), 3.5))
        colours = ["tab:red" if s["variant"].baseline else "tab:blue" for s in summary]
        axes.bar(range(len(names)), means, yerr=stds, color=colours, capsize=4)
        axes.set_xticks(range(len(names)), names, rotation=30, ha="right", fontsize=8)
        axes.set_ylabel(heading)
        axes.set_title(f"{study}: {heading} (baseline in red)")
        figure.tight_layout()
        path = Path(folder) / f"{key}.png"
        figure.savefig(path, dpi=100)
        plt.close(figure)
        paths.append(path)
    return paths


def loss_curve(run_dir, tag="train/loss"):
    """`[(step, seconds since the run's first step, value)]` of a run's TensorBoard scalar `tag` (the loss), every
    event kept; empty when the run has none. The first step is taken to have lasted as long as the second."""
    folder = Path(run_dir) / "tensorboard"
    if not folder.exists():
        return []
    accumulator = EventAccumulator(str(folder), size_guidance={"scalars": 0})
    accumulator.Reload()
    if tag not in accumulator.Tags().get("scalars", []):
        return []
    events = accumulator.Scalars(tag)
    first_step = events[1].wall_time - events[0].wall_time if len(events) > 1 else 0.0
    start = events[0].wall_time - first_step
    return [(e.step, e.wall_time - start, e.value) for e in events]


def plot_loss_curves(study, rows, path):
    """The SSL loss of every finished run against its step, one colour per variant."""
    figure, axes = plt.subplots(figsize=(7, 4))
    colours = {}
    for row in rows:
        if row["status"] != "ok":
            continue
        curve = loss_curve(row["run_dir"])
        if not curve:
            continue
        steps, _, values = zip(*curve)
        colour = colours.setdefault(row["variant"], f"C{len(colours) % 10}")
        first_seed = min(r["seed"] for r in rows if r["variant"] == row["variant"])
        label = row["variant"] if row["seed"] == first_seed else None
        axes.plot(steps, values, color=colour, alpha=0.8, label=label)
    axes.set_xlabel("step")
    axes.set_ylabel("SSL loss")
    axes.set_title(f"{study}: training loss")
    if colours:
        axes.legend(fontsize=7)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return Path(path)


def write_hparams(rows, folder):
    """One TensorBoard hparams entry per finished run (its axis value and seed -> its metrics)."""
    for row in rows:
        if row["status"] != "ok":
            continue
        value = row["value"] if isinstance(row["value"], (int, float, str, bool)) else str(row["value"])
        with SummaryWriter(Path(folder) / Path(row["run_dir"]).name) as writer:
            writer.add_hparams(
                {"variant": row["variant"], row["axis"]: value, "seed": row["seed"]},
                {f"hparam/{key}": row[key] for key, *_ in METRICS + COMPRESSION_METRICS},
                run_name=".",
            )


def write_reports(study, variants, rows, folder, command, budget):
    """Every report of a study into `folder`; returns the paths written."""
    folder = Path(folder)
    write_csv(rows, folder / "results.csv")
    summary = aggregate(variants, rows)
    write_markdown(study, summary, folder / "results.md", command, budget)
    plots = plot_metrics(study, summary, folder)
    curves = plot_loss_curves(study, rows, folder / "loss_curves.png")
    write_hparams(rows, folder / "tensorboard")
    return [folder / "results.csv", folder / "results.md", *plots, curves]
