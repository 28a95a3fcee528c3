"""The learners' policies: the edge policy of graph GRPO (:mod:`~agentgraph.train.policies.edge`)
and the per-role LoRA policy of role GRPO (:mod:`~agentgraph.train.policies.lora`)."""
