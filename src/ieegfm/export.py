"""``ieegfm export``: a checkpoint -> a model folder others can load (``model.safetensors``, ``config.json``,
``README.md``), the layout model hubs use.

The weights go to a safetensors file (a JSON header and raw tensors: loading it runs no code, unlike a pickle);
``config.json`` holds the checkpoint's contract (encoder config, subjects and their channel names, audio targets,
preprocessing, provenance) with the sha256 of the weights, so a damaged or replaced file is refused
(:func:`ieegfm.checkpoint.load_model_folder`); ``README.md`` is a model card with YAML front matter (licence,
library, metrics with their number of candidates and controls, hours per subject, intended use, limitations),
following Mitchell et al. 2019, "Model Cards for Model Reporting" (FAT* '19) and the Hugging Face card layout.
Every command's ``ckpt=`` (and so ``finetune init=pretrained``) reads the folder as it reads a ``.ckpt``.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from pathlib import Path

import torch
import yaml

import ieegfm
from ieegfm.checkpoint import MODEL_CONFIG, MODEL_WEIGHTS, CheckpointContract, checkpoint_sha256, load_checkpoint
from ieegfm.conventions import format_number
from ieegfm.errors import InputError
from ieegfm.io.checksum import sha256_file
from ieegfm.io.jsonfile import read_json

logger = logging.getLogger(__name__)

#: Layout version of ``config.json``.
FORMAT_VERSION = 1
#: Metrics the card reports (a retrieval summary of :func:`ieegfm.evaluation.evaluate.score_split`).
CARD_METRICS = (
    "mean_relative_rank",
    "within_block_mean_relative_rank",
    "shuffled_mean_relative_rank",
    "top10_accuracy",
    "chance_top10_accuracy",
    "n_candidates",
    "p_value_vs_chance",
)


def strip_paths(value, policy: str = "basename"):
    """``value`` (plain data) with every absolute path string reduced to its last part (``policy='basename'``):
    a shared model should not tell where a hospital keeps its recordings."""
    if policy == "keep":
        return value
    if isinstance(value, dict):
        return {k: strip_paths(v, policy) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [strip_paths(v, policy) for v in value]
    if isinstance(value, str) and os.path.isabs(value) and len(value) > 1:
        return Path(value).name or value
    return value


def read_metrics(cfg) -> tuple[dict | None, str | None]:
    """The test metrics the card reports, and where they came from.

    ``metrics=`` (a JSON of ``ieegfm evaluate`` or a run's ``metrics.json``), else ``shards=`` (the test split
    scored now, with its controls), else the ``metrics.json`` of the run folder holding ``ckpt``; None when there
    is none (the card then says the model was not evaluated).

    Raises
    ------
    InputError
        ``metrics=`` missing, not JSON, or without a ``mean_relative_rank``.
    """
    if cfg.metrics:
        path = Path(cfg.metrics)
        d = read_json(path, f"metrics={path}")
        m = d.get("test") if isinstance(d, dict) and isinstance(d.get("test"), dict) else d
        if not isinstance(m, dict) or "mean_relative_rank" not in m:
            raise InputError(
                f"metrics={path}: no mean_relative_rank (expected the JSON of ieegfm evaluate or a run's metrics.json)"
            )
        return m, str(path)
    if cfg.shards:
        from ieegfm.evaluation.evaluate import score_split

        return score_split(cfg.ckpt, cfg.shards, "test")["metrics"], str(cfg.shards)
    beside = Path(cfg.ckpt).parent / "metrics.json"
    if Path(cfg.ckpt).is_file() and beside.is_file():
        d = read_json(beside, str(beside))
        if isinstance(d, dict) and isinstance(d.get("test"), dict):
            return d["test"], str(beside)
    return None, None


def model_config(contract: CheckpointContract, weights: dict, paths: str, source_sha256: str) -> dict:
    """``config.json`` of a model folder: what a reader needs at the top, the whole contract under ``contract``."""
    data = contract.data
    pre = (contract.pretrained or {}).get("data") or {}
    hours = data.get("subject_hours") or {}
    pre_hours = pre.get("subject_hours") or {}
    n_params = sum(int(t.numel()) for t in weights.values() if t.is_floating_point())
    return {
        "library_name": "ieegfm",
        "format_version": FORMAT_VERSION,
        "ieegfm_version": ieegfm.__version__,
        "kind": contract.kind,
        "encoder": contract.encoder,
        "head": contract.head,
        "subjects": {
            s: {
                "index": v["index"],
                "n_channels": len(v["ch_names"]),
                "ch_names": list(v["ch_names"]),
                "coordinates": v.get("coordinates"),
                "hours": hours.get(s),
                "pretraining_hours": pre_hours.get(s),
            }
            for s, v in contract.subjects.items()
        },
        "sfreq": data.get("sfreq"),
        "audio": strip_paths(data.get("audio"), paths),
        "preprocessing": strip_paths((data.get("pack_config") or {}).get("preprocess"), paths),
        "weights": {
            "file": MODEL_WEIGHTS,
            "sha256": None,  # filled once written
            "n_tensors": len(weights),
            "n_parameters": n_params,
        },
        "source_sha256": source_sha256,
        "contract": strip_paths(contract.to_dict(), paths),
    }


_fmt = format_number


def _front_matter(config: dict, metrics: dict | None, cfg) -> dict:
    fm = {
        "license": cfg.license,
        "library_name": "ieegfm",
        "tags": ["ieeg", "seeg", "ecog", "neuroscience", "brain-decoding", "contrastive-learning", config["kind"]],
        "pipeline_tag": "feature-extraction",
    }
    if metrics:
        n = metrics.get("n_candidates")
        rows = [
            {
                "type": k,
                "value": int(metrics[k]) if k == "n_candidates" else float(metrics[k]),
                "name": k.replace("_", " "),
            }
            for k in CARD_METRICS
            if metrics.get(k) is not None
        ]
        fm["model-index"] = [
            {
                "name": cfg.name or Path(cfg.out).name,
                "results": [
                    {
                        "task": {
                            "type": "brain-to-audio-retrieval",
                            "name": f"brain-to-audio retrieval among {n} candidates "
                            f"({metrics.get('candidates', 'within subject')}; chance 0.5, lower is better)",
                        },
                        "dataset": {"type": "ieeg", "name": "test split", "split": "test"},
                        "metrics": rows,
                    }
                ],
            }
        ]
    return fm


def model_card(config: dict, metrics: dict | None, metrics_source: str | None, cfg) -> str:
    """``README.md`` of a model folder: YAML front matter, then the card (Mitchell et al. 2019)."""
    enc, kind = config["encoder"], config["kind"]
    head = config.get("head")
    lines = [
        "---",
        yaml.safe_dump(_front_matter(config, metrics, cfg), sort_keys=False).rstrip(),
        "---",
        "",
        f"# {cfg.name or Path(cfg.out).name}",
        "",
        f"An ieegfm {'pretrained' if kind == 'pretrain' else 'finetuned'} brain encoder (`{enc['name']}`, "
        f"{config['weights']['n_parameters']:,} parameters): {enc.get('n_times')} samples at {enc.get('sfreq')} Hz of "
        f"intracranial EEG -> {enc.get('n_features')} audio features"
        + (f", then a `{head['name']}` head" if head else "")
        + ". Pretrained contrastively (`ieegfm pretrain`) against frozen audio features of the sound the patient "
        "heard.",
        "",
        "## Subjects and channels",
        "",
        f"| subject | channels | {'pretraining' if kind == 'pretrain' else 'task'} hours (train / val / test) |"
        + ("" if kind == "pretrain" else " pretraining hours (train) |"),
        "|---|---|---|" + ("" if kind == "pretrain" else "---|"),
    ]
    for s, v in config["subjects"].items():
        h = v.get("hours")
        hours = " / ".join(_fmt((h or {}).get(sp), 2) for sp in ("train", "val", "test")) if h else "not recorded"
        pre = _fmt((v.get("pretraining_hours") or {}).get("train"), 2) if v.get("pretraining_hours") else "n/a"
        names = ", ".join(v["ch_names"][:8]) + (", ..." if v["n_channels"] > 8 else "")
        lines.append(f"| {s} | {v['n_channels']} ({names}) | {hours} |" + ("" if kind == "pretrain" else f" {pre} |"))
    audio = config.get("audio") or {}
    prep = config.get("preprocessing") or {}
    lines += [
        "",
        f"Audio targets: {audio.get('features', 'n/a')}"
        + (f" ({audio.get('model')}, layer {audio.get('layer')})" if audio.get("layer") is not None else "")
        + (f" at {audio['sfreq']} Hz" if audio.get("sfreq") else "")
        + f". Preprocessing: {', '.join(f'{k} {v}' for k, v in prep.items() if not isinstance(v, dict | list)) or 'n/a'}.",
        "",
        "## Evaluation",
        "",
    ]
    if metrics:
        n = metrics.get("n_candidates")
        lines += [
            f"Test split (from `{metrics_source}`); each window ranked among {n} candidates "
            f"({metrics.get('candidates', 'within subject')}); chance mean relative rank 0.5, lower is better.",
            "",
            "| metric | value |",
            "|---|---|",
            *(f"| {k.replace('_', ' ')} | {_fmt(metrics.get(k))} |" for k in CARD_METRICS if k in metrics),
        ]
        subjects = metrics.get("subjects") or {}
        if len(subjects) > 1:
            lines += [
                "",
                "| subject | mean relative rank | within block | shuffled | candidates |",
                "|---|---|---|---|---|",
            ]
            lines += [
                f"| {s} | {_fmt(v.get('mean_relative_rank'))} | {_fmt(v.get('within_block_mean_relative_rank'))} | "
                f"{_fmt(v.get('shuffled_mean_relative_rank'))} | {v.get('n_candidates')} |"
                for s, v in subjects.items()
            ]
        lines += [
            "",
            "Controls: the shuffled-pairs rank pairs each brain window with another window's audio (chance by "
            "construction); the within-block rank ranks among the windows of the same recording block only.",
        ]
    else:
        lines += [
            "Not evaluated: export with `shards=<task or ambient shards>` (scores the test split) or "
            "`metrics=<ieegfm evaluate JSON>` to put test metrics here.",
        ]
    lines += [
        "",
        "## Intended use",
        "",
        "Research on decoding heard sound and speech from intracranial recordings: "
        + (
            "a starting point for finetuning (`ieegfm finetune ckpt=<this folder> ...`) on a patient's task data. "
            "A patient the model never saw gets a new input layer trained on their data."
            if kind == "pretrain"
            else "retrieval or decoding for the listed subject(s), on recordings packed as the config states."
        ),
        "",
        "## Limitations",
        "",
        "- Not a medical device; not validated for any clinical decision.",
        "- The input layers are per subject: the listed channels of the listed subjects only (by name); other "
        "patients or implants need finetuning, other channels are refused or zero-filled (`channels=intersect`).",
        "- Retrieval figures depend on the number of candidates; compare models only on the same test windows.",
        "- Trained on few patients in a research setting; performance elsewhere is unknown until measured.",
        "",
        "## Loading",
        "",
        "```",
        "ieegfm evaluate ckpt=<this folder> shards=<shards packed on these channels>",
        "ieegfm finetune ckpt=<this folder> shards=<task shards> head=linear",
        "```",
        "",
        "Nothing in the folder is executed on loading: `model.safetensors` holds the tensors, `config.json` the "
        "contract (encoder config, subjects and channels, audio targets, preprocessing) and the weights' sha256.",
        "",
        f"Exported by ieegfm {ieegfm.__version__} from a checkpoint with sha256 {config['source_sha256']}.",
    ]
    return "\n".join(lines) + "\n"


def export(cfg) -> Path:
    """Write the model folder of ``cfg.ckpt`` to ``cfg.out`` (see the module docstring).

    Parameters
    ----------
    cfg : DictConfig
        :class:`ieegfm.config.train.ExportConfig`: ``ckpt``, ``out``, ``metrics``, ``shards``, ``license``,
        ``name``, ``paths``.

    Returns
    -------
    out : Path

    Raises
    ------
    InputError
        See :func:`ieegfm.checkpoint.load_checkpoint` and :func:`read_metrics`; ``out`` exists and is not an
        earlier export (nothing is written over it).
    """
    from safetensors.torch import save_file

    out = Path(cfg.out)
    if out.exists() and (not out.is_dir() or (any(out.iterdir()) and not (out / MODEL_CONFIG).is_file())):
        raise InputError(f"out={out}: exists and is not a model folder of ieegfm export; nothing written")
    state, contract = load_checkpoint(cfg.ckpt)
    metrics, source = read_metrics(cfg)
    source = strip_paths(source, cfg.paths)
    weights = {k: v.detach().to("cpu").contiguous().clone() for k, v in state["state_dict"].items()}
    if not all(isinstance(v, torch.Tensor) for v in weights.values()):
        raise InputError(f"ckpt={cfg.ckpt}: state_dict holds non-tensor entries")
    config = model_config(contract, weights, cfg.paths, checkpoint_sha256(cfg.ckpt))
    tmp = out.parent / f".{out.name}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    save_file(weights, tmp / MODEL_WEIGHTS, metadata={"format": "pt", "library_name": "ieegfm"})
    config["weights"]["sha256"] = sha256_file(tmp / MODEL_WEIGHTS)
    (tmp / MODEL_CONFIG).write_text(json.dumps(config, indent=1) + "\n", encoding="utf-8")
    (tmp / "README.md").write_text(model_card(config, metrics, source, cfg), encoding="utf-8")
    if out.exists():  # an earlier export: replaced whole, once the new one is complete
        old = out.parent / f".{out.name}.old-{os.getpid()}"
        out.rename(old)
        tmp.rename(out)
        shutil.rmtree(old)
    else:
        tmp.rename(out)
    logger.info("export: %s -> %s (%d tensors)", cfg.ckpt, out, len(weights))
    return out
