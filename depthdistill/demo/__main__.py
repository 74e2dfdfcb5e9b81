"""`python -m depthdistill.demo --config stages.yaml --out runs/demo` (what `make demo` runs).

Runs the chain of `depthdistill.demo.chain` and ends with one line: where the report is, the
headline numbers and the wall time. Exit 1 (with the failing step named) if a step fails.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    from depthdistill.demo.chain import DEFAULT_STUDENTS

    p = argparse.ArgumentParser(prog="python -m depthdistill.demo", description=__doc__.splitlines()[0])
    p.add_argument("--config", type=Path, default=Path("stages.yaml"), help="stages file (default stages.yaml)")
    p.add_argument("--out", type=Path, default=Path("runs/demo"), help="run folder (default runs/demo)")
    p.add_argument("--students", type=Path, default=DEFAULT_STUDENTS,
                   help="the two students and the demo's step counts (default configs/demo-students.yaml)")
    p.add_argument("--steps", type=int, default=None, help="override the students' training steps")
    p.add_argument("--images", default=None, help="override images.source, e.g. world://unlabeled?n=8")
    p.add_argument("--sequential", action="store_true",
                   help="train the students one after the other (default: both at once, one thread each)")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    from depthdistill.demo.chain import StepFailedError, run_demo
    from depthdistill.demo.report import headline

    from depthdistill.cli import setup_logging

    args = parse_args(argv)
    setup_logging()
    if args.steps is not None and args.steps < 1:
        print("error: --steps must be 1 or more", file=sys.stderr)
        return 2
    start = time.perf_counter()
    try:
        plan = run_demo(args.config, args.out, students_file=args.students, steps=args.steps,
                        images=args.images, parallel=not args.sequential)
    except StepFailedError as exc:
        print(f"\nDEMO FAILED at step '{exc.step}': {exc}", file=sys.stderr)
        return 1
    except ValueError as exc:
        print(f"\nDEMO FAILED: {exc}", file=sys.stderr)
        return 1
    minutes = (time.perf_counter() - start) / 60
    print(f"\ndemo done in {minutes:.1f} min: report {Path(plan.out) / 'report.md'}; {headline(plan.out)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
