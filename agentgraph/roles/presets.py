r"""Model presets: the settings a model's authors recommend, chosen by model family.

A preset is applied when a team is built (``Team(preset=...)``; the CLI picks one from ``--model``
unless ``--preset`` names another or ``none``). It sits between the role cards and the team's own
overrides, so anything a user sets (``--temperature``, ``--max-tokens``, a card, an agent's
override) still wins. What each built-in preset does, and where its numbers come from:

- ``r1-distill`` (DeepSeek-R1-Distill-Qwen/Llama): no system prompt — its instructions go into the
  user turn —, temperature 0.6, top-p 0.95, a long turn (8192 new tokens), and for math the
  "Please reason step by step, and put your final answer within \boxed{}." directive (the model
  card's usage recommendations). The chat template opens ``<think>``: thinking is detected from it.
- ``qwen3`` (Qwen3 in thinking mode): temperature 0.6, top-p 0.95, top-k 20, 8192 new tokens (the
  model card's "best practices" for thinking mode).
- ``qwen2.5-math`` (Qwen2.5-Math-Instruct): its chain-of-thought system prompt directive, 0.7 /
  0.8 / top-k 20 (its generation config), 2048 new tokens inside a 4096 context.
- ``default``: nothing changed — the embedded model and unknown families keep the role cards'
  settings and a 2048-token context.

Examples
--------
>>> preset_for("deepseek-ai/DeepSeek-R1-Distill-Qwen-1.5B").name
'r1-distill'
>>> preset_for(None).name, preset_for("HuggingFaceTB/SmolLM2-135M-Instruct").name
('default', 'default')
>>> choose("qwen3", None).sampling.top_k
20
"""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from agentgraph.core.errors import ConfigError
from agentgraph.core.sampling import SamplingOverrides
from agentgraph.core.thinking import Share
from agentgraph.roles.book import RoleBook

BOXED = "Please reason step by step, and put your final answer within \\boxed{}."


class Preset(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    match: tuple[str, ...] = Field((), description="lower-case substrings of a model id or directory name")
    system_prompt: bool = Field(True, description="False: role system prompts go into the user turn")
    sampling: SamplingOverrides = SamplingOverrides()
    instruction_suffix: str = Field("", description="appended to the instruction of every boxed-answer role")
    share: Share | None = Field(None, description="what agents read of each other (None: final)")
    max_model_len: int = Field(
        2048, ge=16, description="engine context unless --max-model-len says otherwise"
    )
    source: str = Field("", description="where the numbers come from")

    def apply(self, roles: RoleBook) -> RoleBook:
        """The role cards with this preset's instruction suffix (sampling is merged per turn)."""
        if not self.instruction_suffix:
            return roles
        return RoleBook(
            r.model_copy(update={"instruction": f"{r.instruction.strip()} {self.instruction_suffix}"})
            if r.answer_format == "boxed" and self.instruction_suffix not in r.instruction
            else r
            for r in (roles[n] for n in roles)
        )


DEFAULT = Preset(name="default", source="the role cards as they are")
PRESETS: tuple[Preset, ...] = (
    Preset(
        name="r1-distill",
        match=("r1-distill", "deepseek-r1"),
        system_prompt=False,
        sampling=SamplingOverrides(temperature=0.6, top_p=0.95, max_tokens=8192),
        instruction_suffix=BOXED,
        max_model_len=16384,
        source="DeepSeek-R1 model card, usage recommendations",
    ),
    Preset(
        name="qwen3",
        match=("qwen3",),
        sampling=SamplingOverrides(temperature=0.6, top_p=0.95, top_k=20, max_tokens=8192),
        instruction_suffix=BOXED,
        max_model_len=16384,
        source="Qwen3 model card, best practices (thinking mode)",
    ),
    Preset(
        name="qwen2.5-math",
        match=("qwen2.5-math",),
        sampling=SamplingOverrides(temperature=0.7, top_p=0.8, top_k=20, max_tokens=2048),
        instruction_suffix=BOXED,
        max_model_len=4096,
        source="Qwen2.5-Math model card (CoT prompt) and generation_config.json",
    ),
    DEFAULT,
)


def preset_for(model: str | None) -> Preset:
    """The built-in preset whose family matches ``model`` (an HF id or a path), else ``default``."""
    if model is None:
        return DEFAULT
    text = str(model).lower()
    names = (text, Path(text.rstrip("/")).name)
    for p in PRESETS:
        if any(m in n for m in p.match for n in names):
            return p
    return DEFAULT


def choose(name: str | None, model: str | None) -> Preset:
    """``auto`` (or ``None``): by model family; ``none``: the default; else a preset by name."""
    if name in (None, "auto"):
        return preset_for(model)
    if name == "none":
        return DEFAULT
    for p in PRESETS:
        if p.name == name:
            return p
    known = ", ".join(["auto", "none", *(p.name for p in PRESETS)])
    raise ConfigError("preset", f"unknown preset {name!r}", f"use one of {known}")


__all__ = ["DEFAULT", "PRESETS", "Preset", "choose", "preset_for"]
