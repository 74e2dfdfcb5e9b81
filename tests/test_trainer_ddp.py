"""DDP on CPU: 2 gloo ranks (spawned processes) see disjoint samples and end with equal weights."""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path

import pytest
import torch


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _rank_main(rank: int, world: int, port: int, store: str, out: str, reference: str) -> None:
    torch.set_num_threads(1)
    os.environ.update(RANK=str(rank), WORLD_SIZE=str(world), LOCAL_RANK=str(rank),
                      MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    from depthdistill.trainer import data as tdata
    from depthdistill.trainer import loop
    from test_trainer_loop import tiny_config

    keys: list[list[str]] = []
    real_update, real_step = tdata.DataPosition.update, loop.train_step
    holder = {}

    def update(self, batch):
        keys.append(list(batch["keys"]))
        real_update(self, batch)

    def step(state, *a, **kw):
        holder["model"] = state.model
        return real_step(state, *a, **kw)

    tdata.DataPosition.update, loop.train_step = update, step
    loop.train(tiny_config(steps=4, num_workers=0, w_feat=0.5, feat_reference=reference, w_anchor=0.1), store, out)
    Path(out, f"keys{rank}.json").write_text(json.dumps(keys))
    torch.save(holder["model"].state_dict(), Path(out, f"weights{rank}.pt"))


@pytest.mark.slow
def test_two_gloo_ranks_disjoint_samples_identical_weights(tmp_path: Path) -> None:
    import torch.multiprocessing as mp

    from test_trainer_data import make_store

    from depthdistill.models.configs import build_dav2

    store = make_store(tmp_path, num_shards=4, per_shard=4)
    out = tmp_path / "run"
    build_dav2("tiny", seed=1).save_pretrained(tmp_path / "reference")  # L_feat's frozen encoder
    mp.spawn(_rank_main, args=(2, _free_port(), str(store), str(out), str(tmp_path / "reference")), nprocs=2,
             join=True)
    k0, k1 = (json.loads((out / f"keys{r}.json").read_text()) for r in range(2))
    first_epoch0 = {k for b in k0[:4] for k in b}  # 4 batches x 2 = 8 samples = one rank-epoch
    first_epoch1 = {k for b in k1[:4] for k in b}
    assert len(first_epoch0) == len(first_epoch1) == 8 and not first_epoch0 & first_epoch1
    w0, w1 = (torch.load(out / f"weights{r}.pt") for r in range(2))
    for name in w0:
        torch.testing.assert_close(w0[name], w1[name], msg=name)
    assert (out / "ckpt_last.pt").is_file() and (out / "student" / "config.json").is_file()
