"""`make labels`: images -> view plan -> teachers on Ray (once) -> label shards.

sources (collections + ids), decode (bad input -> reason), plan (plan.jsonl + hash), label
(the Ray actor: prefetch thread + micro-batches; the views-shard task), run
(orchestration, cache, retries), summary (progress bars + closing table).
"""
