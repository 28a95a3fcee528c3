"""The bottom layer: errors, sampling settings, messages and turns, answer extraction, thinking
markers, the embedded model, retries, statistics, logging, plotting and atomic writes. Imports
nothing else of agentgraph.
"""
