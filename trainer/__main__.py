"""`python -m depthdistill.trainer` — the DDP entry point (what `torchrun` and `--nproc` run).

    torchrun --nproc_per_node=N -m depthdistill.trainer --shards STORE [--config stages.yaml]
             [--out DIR] [--steps N] [--set train.batch_size=4 ...]

Each rank runs `loop.train`; torchrun provides RANK / WORLD_SIZE / LOCAL_RANK and the
rendezvous. `--set` overrides use the same dotted keys as the config file (values are YAML).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys


def parse_overrides(items: list[str]) -> dict:
    import yaml

    out = {}
    for item in items:
        if "=" not in item:
            raise ValueError(f"--set {item}: use KEY=VALUE, e.g. train.batch_size=4")
        key, value = item.split("=", 1)
        out[key] = yaml.safe_load(value)
    return out


def main(argv: list[str] | None = None) -> int:
    from depthdistill.config import ConfigError, load_config

    parser = argparse.ArgumentParser(prog="python -m depthdistill.trainer", description=__doc__.splitlines()[0])
    parser.add_argument("--shards", required=True, help="label store folder (holds manifest.json)")
    parser.add_argument("--config", default="stages.yaml")
    parser.add_argument("--out", default=None, help="run folder (default train.out)")
    parser.add_argument("--steps", type=int, default=None)
    parser.add_argument("--set", dest="overrides", action="append", default=[], help="KEY=VALUE config override")
    args = parser.parse_args(argv)
    rank = int(os.environ.get("RANK", "0"))
    logging.basicConfig(level=logging.INFO if rank == 0 else logging.WARNING,
                        format=f"%(asctime)s [rank {rank}] %(levelname)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    try:
        config = load_config(args.config, parse_overrides(args.overrides))
        from depthdistill.trainer.loop import train

        result = train(config, args.shards, args.out, steps=args.steps)
    except (ConfigError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if rank == 0:
        print(f"trained {result.steps} steps -> {result.out} (student: {result.export_dir})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
