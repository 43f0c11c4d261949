"""Where the metrics rows are mirrored besides ``metrics.jsonl``: TensorBoard and Weights & Biases.

Both are optional extras of the package (``pip install 'thinksolve[tensorboard]'``,
``'thinksolve[wandb]'``), named the way TRL names them (``report_to``). :func:`check_loggers`
turns a logger asked for but not installed into one line naming the extra; :func:`open_logger`
starts one. A logger gets the finite numbers of a row (nested dicts flattened to ``a/b`` tags),
at the row's ``step``; evaluation rows go under ``eval/``.

Weights & Biases runs offline unless ``WANDB_MODE`` says otherwise (``WANDB_MODE=online`` with a
login syncs live; ``wandb sync OUT/wandb/offline-run-*`` uploads an offline run later), so a run
never reaches the network by default. Its files are under ``OUT/wandb/``; the project is
``WANDB_PROJECT`` (default ``thinksolve``) and the run's name the run directory's.
"""

from __future__ import annotations

import importlib.util
import math
import os
from pathlib import Path
from typing import Any

__all__ = ["EXTRAS", "LoggerMissing", "check_loggers", "open_logger", "scalars", "TensorBoardLogger", "WandbLogger"]

#: logger name -> (the module it imports, the extra that installs it)
EXTRAS = {"tensorboard": ("tensorboard", "tensorboard"), "wandb": ("wandb", "wandb")}


class LoggerMissing(ImportError):
    """A logger was asked for (``report_to``) but its package is not installed."""


def missing_message(name: str, field: str = "report_to") -> str:
    module, extra = EXTRAS[name]
    return (f"{field} names {name!r}, but the {module} package is not installed: pip install 'thinksolve[{extra}]' "
            f"(or pip install {module}), or drop {name} from {field}")


def installed(name: str) -> bool:
    """Whether logger ``name``'s package can be imported here."""
    return importlib.util.find_spec(EXTRAS[name][0]) is not None


def check_loggers(names: list[str], field: str = "report_to") -> None:
    """Raise :class:`LoggerMissing` (one line, naming the extra) for the first of ``names`` whose
    package is not installed."""
    for name in names:
        if not installed(name):
            raise LoggerMissing(missing_message(name, field))


def scalars(row: dict, prefix: str = "") -> dict[str, float]:
    """The finite numbers of ``row`` (nested dicts flattened to ``a/b``), by tag; ``step``,
    ``timestamp`` and booleans left out."""
    out: dict[str, float] = {}
    for k, v in row.items():
        if isinstance(v, dict):
            out.update(scalars(v, f"{prefix}{k}/"))
        elif k not in ("step", "timestamp") and isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v):
            out[f"{prefix}{k}"] = float(v)
    return out


class TensorBoardLogger:
    """``OUT/tensorboard/`` event files (``torch.utils.tensorboard.SummaryWriter``)."""

    name = "tensorboard"

    def __init__(self, out: str | os.PathLike, config: dict | None = None) -> None:
        from torch.utils.tensorboard import SummaryWriter  # noqa: PLC0415 (needs the optional tensorboard package)

        self.writer = SummaryWriter(str(Path(out) / "tensorboard"))

    def log(self, values: dict[str, float], step: int) -> None:
        for k, v in values.items():
            self.writer.add_scalar(k, v, step)
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()


class WandbLogger:
    """A Weights & Biases run under ``OUT/wandb/`` (offline unless ``WANDB_MODE`` is set)."""

    name = "wandb"

    def __init__(self, out: str | os.PathLike, config: dict | None = None) -> None:
        import wandb  # noqa: PLC0415 (optional and heavy: imported only when asked for)

        out = Path(out)
        self.run = wandb.init(dir=str(out), project=os.environ.get("WANDB_PROJECT", "thinksolve"),
                              name=out.resolve().name, config=config or {},
                              mode=os.environ.get("WANDB_MODE", "offline"), reinit="create_new",
                              settings=wandb.Settings(quiet=True))

    def log(self, values: dict[str, float], step: int) -> None:
        self.run.log(values, step=step)

    def close(self) -> None:
        self.run.finish()


def open_logger(name: str, out: str | os.PathLike, config: dict | None = None) -> Any:
    """Start logger ``name`` (``tensorboard`` or ``wandb``) for run directory ``out``; a missing
    package is :class:`LoggerMissing`."""
    check_loggers([name])
    return {"tensorboard": TensorBoardLogger, "wandb": WandbLogger}[name](out, config)
