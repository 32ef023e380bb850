"""Helpers for the Snakemake entry-point scripts."""

from __future__ import annotations

import logging
import os
import sys
import traceback
from pathlib import Path
from typing import Any

_THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")


def console_script(name: str) -> str:
    """Path of a console script (nequip-train, snakemake) next to the running interpreter.

    Falls back to ``name`` on ``PATH`` when the interpreter's directory lacks it.
    """
    candidate = Path(sys.executable).parent / name
    return str(candidate) if candidate.exists() else name


def setup_job(log_file: str | Path, threads: int = 1) -> None:
    """Route logging and stderr of a job to ``log_file`` and pin its thread count.

    Threads are limited to the job's ``threads``: on a busy node, extra BLAS or
    OpenMP threads per process slow MD down by orders of magnitude.
    """
    for name in _THREAD_VARIABLES:
        os.environ[name] = str(threads)
    try:
        import torch

        torch.set_num_threads(threads)
    except ImportError:  # pragma: no cover - torch is a dependency
        pass
    Path(log_file).parent.mkdir(parents=True, exist_ok=True)
    handle = open(log_file, "a", buffering=1)  # noqa: SIM115 - lives as long as the job
    console = sys.stderr
    sys.stderr = handle
    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=handle,
        force=True,
    )
    sys.excepthook = _failure_hook(console, str(log_file))


def _failure_hook(console: Any, log_file: str) -> Any:
    """An excepthook: the traceback goes to the log, the error itself also to the console.

    Snakemake's own message about a failed job names only the log; the user sees
    why it failed (a missing environment variable, a wrong path) without opening it.
    """

    def hook(kind: type[BaseException], error: BaseException, trace: Any) -> None:
        traceback.print_exception(kind, error, trace, file=sys.stderr)
        message = str(error).strip() or "(no message)"
        print(f"almomd: {kind.__name__}: {message}\n  (traceback in {log_file})", file=console)

    return hook
