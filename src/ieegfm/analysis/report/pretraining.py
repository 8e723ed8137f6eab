"""Pretraining runs in a report: what ``ieegfm pretrain`` wrote (``summary.json``, ``test.json``, ``test.png``,
``config.yaml``) and its loss over steps, read from the run's TensorBoard events (``tb/``).
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import matplotlib
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from ieegfm.analysis.report.blocks import Code, Details, Figure, Section, Table, Text

#: The scalars the loss figure draws (tag -> legend), as ``ieegfm pretrain`` logs them.
LOSS_TAGS = {"train/loss": "train", "val/loss": "validation"}
RANK_TAGS = {"val/mean_relative_rank": "validation", "val/shuffled_mean_relative_rank": "shuffled control"}


def find_runs(root: Path) -> list[Path]:
    """Folders under ``root`` holding a pretraining run: a ``summary.json`` with ``global_step`` and ``encoder``."""
    runs = []
    for path in sorted(root.rglob("summary.json")):
        try:
            s = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        if isinstance(s, dict) and "global_step" in s and "encoder" in s:
            runs.append(path.parent)
    return runs


def read_scalars(tb: Path) -> dict[str, tuple[list[int], list[float]]]:
    """Every scalar of the TensorBoard event files under ``tb``: ``{tag: (steps, values)}``, by step.

    Parameters
    ----------
    tb : Path
        A run's ``tb/`` folder (several event files, e.g. of a resumed run, are merged by step).

    Returns
    -------
    dict
        Empty when there are no event files.
    """
    out: dict[str, dict[int, float]] = {}
    for events in sorted(tb.rglob("events.out.tfevents.*")):
        acc = EventAccumulator(str(events), size_guidance={"scalars": 0})
        acc.Reload()
        for tag in acc.Tags().get("scalars", []):
            out.setdefault(tag, {}).update({e.step: e.value for e in acc.Scalars(tag)})
    return {t: (sorted(v), [v[k] for k in sorted(v)]) for t, v in out.items()}


def loss_figure(scalars: dict, title: str) -> bytes | None:
    """PNG of the loss (train, validation) and of the validation mean relative rank with its control, by step.

    Returns ``None`` when the events hold no ``train/loss``.
    """
    if "train/loss" not in scalars:
        return None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_loss, ax_rank) = plt.subplots(1, 2, figsize=(10, 3.4), layout="constrained")
    for tag, label in LOSS_TAGS.items():
        if tag in scalars:
            steps, values = scalars[tag]
            ax_loss.plot(steps, values, marker="o" if len(steps) < 30 else None, ms=3, label=label)
    ax_loss.set(xlabel="step", ylabel="contrastive loss", title="loss")
    ax_loss.legend(frameon=False)
    for tag, label in RANK_TAGS.items():
        if tag in scalars:
            steps, values = scalars[tag]
            ax_rank.plot(steps, values, marker="o", ms=3, label=label)
    ax_rank.axhline(0.5, color="0.6", ls="--", lw=1, label="chance")
    ax_rank.set(xlabel="step", ylabel="mean relative rank", title="validation retrieval", ylim=(0, 0.6))
    ax_rank.legend(frameon=False)
    fig.suptitle(title, fontsize=10)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90)
    plt.close(fig)
    return buf.getvalue()


def _f(x, digits: int = 3) -> str:
    return "n/a" if x is None else f"{x:.{digits}f}" if isinstance(x, float) else str(x)


def subject_table(metrics: dict) -> Table:
    """Each subject's test metrics (its windows the only candidates of its windows) and the mean over subjects
    with its 95 % interval."""
    rows = [
        (
            label,
            _f(m.get("mean_relative_rank")),
            _f(m.get("within_block_mean_relative_rank")),
            _f(m.get("top10_accuracy")),
            _f(m.get("shuffled_mean_relative_rank")),
            _f(m.get("n_candidates")),
        )
        for label, m in metrics["subjects"].items()
    ]
    ci = metrics.get("mean_relative_rank_ci")
    mean = _f(metrics.get("mean_relative_rank")) + (f" [{ci[0]:.3f}, {ci[1]:.3f}]" if ci else "")
    rows.append((f"mean over subjects ({metrics.get('candidates', 'within subject')})", mean))
    return Table(("subject", "test rank", "within-block", "top-10", "shuffled control", "candidates"), tuple(rows))


def pretraining_section(root: Path, runs: list[Path]) -> Section:
    """One section for every pretraining run under ``root``: a table of their test metrics with the controls,
    then per run its loss curve, its rank distribution (``test.png``) and its config, collapsed when many."""
    header = (
        "run",
        "encoder",
        "pooling",
        "control",
        "steps",
        "train windows",
        "best val rank",
        "test rank",
        "within-block",
        "shuffled control",
        "candidates",
    )
    rows, groups = [], []
    for d in runs:
        s = json.loads((d / "summary.json").read_text())
        t = json.loads((d / "test.json").read_text()) if (d / "test.json").is_file() else {}
        name = str(d.relative_to(root)) if d != root else d.name
        enc = s.get("encoder", {})
        rows.append(
            (
                name,
                str(enc.get("name", "")),
                str(enc.get("pooling", "")),
                str(s.get("control", "")),
                _f(s.get("global_step")),
                _f(s.get("train_windows")),
                _f(s.get("best_val_mean_relative_rank")),
                _f(t.get("mean_relative_rank")),
                _f(t.get("within_block_mean_relative_rank")),
                _f(t.get("shuffled_mean_relative_rank")),
                _f(t.get("n_candidates")),
            )
        )
        blocks: list = []
        png = loss_figure(read_scalars(d / "tb"), name) if (d / "tb").is_dir() else None
        if png is not None:
            blocks.append(Figure(f"{name} loss", png=png))
        else:
            blocks.append(Text(f"No loss curve: no `train/loss` in TensorBoard events under `{d / 'tb'}`."))
        if len(t.get("subjects") or {}) > 1:
            blocks.append(subject_table(t))
        if (d / "test.png").is_file():
            blocks.append(Figure(f"{name} test ranks", path=d / "test.png"))
        if (d / "config.yaml").is_file():
            blocks.append(Code((d / "config.yaml").read_text(), summary=f"config: `{d / 'config.yaml'}`"))
        groups.append(Details(f"run `{name}`", tuple(blocks), open=len(runs) <= 3))
    intro = Text(
        "Test split metrics as `ieegfm evaluate` wrote them (`test.json`; n/a where a run has none): mean relative "
        "rank among the test windows (`candidates`; 0.5 = chance), within the true window's own block, and the "
        "shuffled-pairs control, which must sit at 0.5. Loss curves: `train/loss` every logged step, `val/loss` "
        "(the same loss on the validation windows in training-sized batches) at each validation."
    )
    return Section(f"Pretraining runs: {root.name}", root, [intro, Table(header, tuple(rows)), *groups])
