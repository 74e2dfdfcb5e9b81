"""The same labeling code on a simulated two-node Ray cluster (custom `fake_gpu` resources)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from test_pipeline_run import assets, make_cfg  # noqa: F401  (module fixture + helper)


@pytest.mark.slow
def test_shards_spread_over_two_nodes_nothing_lost_or_duplicated(assets, tmp_path):  # noqa: F811
    import ray
    from ray.cluster_utils import Cluster

    from depthdistill.pipeline.run import run_labels
    from depthdistill.shards import open_store, validate_store

    if ray.is_initialized():
        ray.shutdown()
    cluster = Cluster(initialize_head=True, head_node_args={
        "num_cpus": 1, "resources": {"fake_gpu": 1}, "include_dashboard": False})
    cluster.add_node(num_cpus=1, resources={"fake_gpu": 1})
    try:
        ray.init(address=cluster.address, log_to_driver=False)
        node_ids = {n["NodeID"] for n in ray.nodes() if n["Alive"]}
        assert len(node_ids) == 2
        # num_actors 0 = one actor per fake GPU; each actor asks for {"fake_gpu": 1}
        cfg = make_cfg(assets, tmp_path / "out", num_actors=0, actor_resources={"fake_gpu": 1})
        summary = run_labels(cfg)
        assert summary.ok
        run = summary.teachers[0]
        markers = [json.loads(p.read_text()) for p in sorted(Path(run.folder).glob("shard-*.json"))]
        assert {m["node_id"] for m in markers} == node_ids  # both nodes labeled shards
        assert set(run.nodes) == node_ids and sum(run.nodes.values()) == summary.num_shards
        store = open_store(summary.store)
        keys = [s.key for i in range(store.num_shards) for s in store.iter_shard(i, ["dav2"])]
        plan = [json.loads(x)["key"] for x in (summary.store / "plan.jsonl").read_text().splitlines()]
        assert keys == plan
        assert validate_store(summary.store).ok
    finally:
        ray.shutdown()
        cluster.shutdown()
