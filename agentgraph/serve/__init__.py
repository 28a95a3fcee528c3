"""Entry points over the engine that are not the CLI: a team as an OpenAI-compatible model
(:mod:`~agentgraph.serve.server`) and the transcript viewer (:mod:`~agentgraph.serve.viewer`).
"""
