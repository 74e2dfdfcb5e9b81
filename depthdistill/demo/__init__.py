"""`make demo` and `make science`: the whole chain run through the real CLI, and its report.

    python -m depthdistill.demo --config stages.yaml --out runs/demo      (make demo)
    python -m depthdistill.demo.science --config stages.yaml --out runs/science   (make science)

Modules: `chain` (the steps as CLI subprocesses), `report` (report.md + PNGs from the runs'
own outputs), `science` (the paper's ablations at small scale), `tables` (mean +- spread and
Markdown tables). Importing this package loads no torch / ray.
"""
