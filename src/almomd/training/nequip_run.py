"""Train and package one NequIP model in one process: NequIP's imports are paid once.

``nequip-train`` and ``nequip-package`` each spend seconds importing torch,
Lightning and NequIP before doing anything (about 9 s of CPU each on the
development machine, more than packaging itself). This runs the two command
lines' own entry points one after the other in a fresh process::

    python -m almomd.training.nequip_run RUN_DIR CONFIG_NAME PACKAGE_OUT [RUN_DIR ...]

``nequip-train -cp RUN_DIR -cn CONFIG_NAME hydra.run.dir=RUN_DIR/hydra``, then
``nequip-package build RUN_DIR/hydra/best.ckpt PACKAGE_OUT``, for each member
named; the seconds each took go to ``RUN_DIR/times.json``. Several members in
one process give the same models as one process each (derived seeds; checked
by the tests). A failure exits non-zero with NequIP's own message on stderr, as
the command lines would.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

TIMES = "times.json"


def main(argv: list[str] | None = None) -> int:
    """Train and package the members named by (RUN_DIR, CONFIG_NAME, PACKAGE_OUT) triples."""
    args = sys.argv[1:] if argv is None else argv
    if not args or len(args) % 3:
        sys.exit(
            "usage: python -m almomd.training.nequip_run "
            f"(RUN_DIR CONFIG_NAME PACKAGE_OUT)...: {args}"
        )
    started = time.perf_counter()
    from nequip.scripts import package, train
    from omegaconf import OmegaConf

    import_s = time.perf_counter() - started
    for run_dir, config_name, package_out in zip(args[::3], args[1::3], args[2::3], strict=True):
        # nequip-train registers this resolver on every call: a second member in the
        # same process would otherwise fail
        OmegaConf.clear_resolver("training_data_stats")
        times = {"import_s": import_s}
        started = time.perf_counter()
        sys.argv = ["nequip-train", "-cp", run_dir, "-cn", config_name,
                    f"hydra.run.dir={Path(run_dir) / 'hydra'}"]  # fmt: skip
        train.main()  # Hydra reads sys.argv; it exits non-zero itself on errors
        times["train_s"] = time.perf_counter() - started
        started = time.perf_counter()
        package.main(["build", str(Path(run_dir) / "hydra" / "best.ckpt"), package_out])
        times["package_s"] = time.perf_counter() - started
        (Path(run_dir) / TIMES).write_text(json.dumps(times))
        import_s = 0.0  # paid once
    return 0


if __name__ == "__main__":
    sys.exit(main())
