"""searchrel.labeling: the daily batch labeling of logged impressions with soft labels.

``job`` runs one impressions partition shard by shard (``shards``: assignment, atomic files,
records) through a ``labeler.Labeler``: the fine-tuned teacher (``teacher_labeler``) or a
served LLM (``judge``). ``collect`` gathers the shards of a fanned-out run and exports their
freshness (``prometheus``); ``threads`` sizes the local teacher's CPU threads.
"""
