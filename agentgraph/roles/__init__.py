"""Role cards (``cards/*.yaml``) and their loader, the model authors' presets, and the prompts an
agent is shown.
"""
