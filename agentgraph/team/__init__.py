"""A team: a topology, its role cards and its protocol (:class:`~agentgraph.team.config.TeamConfig`),
checked before any request; and the :class:`~agentgraph.team.strategy.Strategy` protocol a search
or cascade implements.
"""
