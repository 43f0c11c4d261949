"""Every role's prompt template, in one place (docs/method.md#the-game and #sepo).

The environment defines the roles, so it owns the prompts: a policy only ever receives chat
messages. Users override any template by passing a :class:`PromptSet` (or keyword overrides to
:func:`prompt_set`) to :class:`~thinksolve_env.env.ThinkSolveEnv`.

Templates are ``str.format`` strings; the placeholders each one accepts are listed beside it.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass

__all__ = [
    "PromptSet",
    "DEFAULT_PROMPTS",
    "prompt_set",
    "strip_trailing_boxed",
    "prepare_thought",
    "thinker_messages",
    "solver_messages",
    "solo_messages",
    "rating_messages",
    "rating_prompts",
    "RATING_PAIRS",
    "RATER_ROLES",
]

THINKER_SYSTEM = (
    "You are the Thinker in a two-agent team. Read the math problem and write a concise "
    "thought for your teammate, the Solver: the approach, key observations and useful "
    "intermediate results. Do not state the final answer and do not use \\boxed{}."
)
SOLVER_SYSTEM = (
    "You are the Solver in a two-agent team. You are given a math problem and a thought from "
    "your teammate, the Thinker. Use the thought if it helps, solve the problem step by step, "
    "and put your final answer in \\boxed{}."
)
SOLO_SYSTEM = (
    "You are a math problem solver. Solve the problem directly, step by step, and put your "
    "final answer in \\boxed{}."
)
RATER_SYSTEM = (
    "You are reviewing a finished two-agent attempt at a math problem. The Thinker wrote a "
    "thought, the Solver wrote the answer, and a verifier has judged the answer. Decide how much "
    "of the outcome each agent is responsible for: credit if the answer is correct, blame if it "
    "is wrong. Reply with one JSON object and nothing else: "
    '{{"outcome": "correct" or "wrong", "pair": [thinker_share, solver_share], '
    '"brief_reason": "..."}}, where the pair is one of {pairs}.'
)

#: The fixed set of (Thinker share, Solver share) ratings of docs/method.md#sepo.
RATING_PAIRS: tuple[tuple[float, float], ...] = tuple(
    (round(t / 10, 1), round(1 - t / 10, 1)) for t in range(9, 0, -1)
)


@dataclass(frozen=True)
class PromptSet:
    """The templates of every role. Placeholders:

    - ``thinker_user``: ``{problem}``
    - ``thinker_briefing_user``: ``{problem}``, ``{briefing}`` (used instead of ``thinker_user``
      when the problem carries a briefing only the Thinker sees, ``Problem.meta["briefing"]``)
    - ``solver_user``: ``{problem}``, ``{thought}``
    - ``solo_user``: ``{problem}``
    - ``rater_user``: ``{problem}``, ``{thought}``, ``{answer}``, ``{outcome}``, ``{role}``
    - ``rater_system``: ``{pairs}``
    """

    thinker_system: str = THINKER_SYSTEM
    thinker_user: str = "{problem}"
    thinker_briefing_user: str = "{problem}\n\nBriefing (only you can see it):\n{briefing}"
    solver_system: str = SOLVER_SYSTEM
    solver_user: str = "Problem:\n{problem}\n\nThinker's thought:\n{thought}"
    solo_system: str = SOLO_SYSTEM
    solo_user: str = "{problem}"
    rater_system: str = RATER_SYSTEM
    rater_user: str = (
        "Problem:\n{problem}\n\nThinker's thought:\n{thought}\n\nSolver's answer:\n{answer}\n\n"
        "Verifier outcome: {outcome}\n\nYou are the {role}. Rate the team's {outcome_word}."
    )

    def replace(self, **overrides: str) -> PromptSet:
        return prompt_set(self, **overrides)


DEFAULT_PROMPTS = PromptSet()

_FIELDS = {f.name for f in dataclasses.fields(PromptSet)}


def prompt_set(base: PromptSet | None = None, **overrides: str) -> PromptSet:
    """A :class:`PromptSet` with some templates overridden; unknown names are an error."""
    unknown = set(overrides) - _FIELDS
    if unknown:
        raise ValueError(f"unknown prompt template(s) {sorted(unknown)}; known: {sorted(_FIELDS)}")
    for k, v in overrides.items():
        if not isinstance(v, str):
            raise TypeError(f"prompt template {k!r} must be a str, got {type(v).__name__}")
    return dataclasses.replace(base or DEFAULT_PROMPTS, **overrides)


# --------------------------------------------------------------------------- thought hand-over

_TRAILING_BOXED_RE = re.compile(r"\\(?:boxed|fbox)\s*\{")


def strip_trailing_boxed(thought: str) -> str:
    """Remove one trailing ``\\boxed{...}`` (the Thinker was told not to give the answer).

    Only a box that ends the thought (trailing whitespace and ``$``/``.`` aside) is removed;
    a box in the middle of the text stays.
    """
    tail_pos = len(thought.rstrip().rstrip("$.").rstrip())
    start = None
    for m in _TRAILING_BOXED_RE.finditer(thought):
        start = m.start()
    if start is None:
        return thought
    depth = 0
    i = thought.index("{", start)
    while i < len(thought):
        c = thought[i]
        if c == "{":
            depth += 1
        elif c == "}":
            depth -= 1
            if depth == 0:
                break
        i += 1
    else:
        return thought  # unbalanced: leave the text alone
    if i + 1 != tail_pos:
        return thought
    head = thought[:start].rstrip()
    head = head[:-1].rstrip() if head.endswith("$") and head.count("$") % 2 == 1 else head
    return head


def prepare_thought(thought: str, max_chars: int | None) -> str:
    """What the Solver receives: one trailing box stripped, then cut to ``max_chars`` (keeping
    the beginning)."""
    t = strip_trailing_boxed(thought)
    if max_chars is not None and len(t) > max_chars:
        t = t[:max_chars]
    return t


# --------------------------------------------------------------------------- chat builders


def _chat(system: str, user: str) -> list[dict]:
    return [{"role": "system", "content": system}, {"role": "user", "content": user}]


def thinker_messages(problem: str, prompts: PromptSet = DEFAULT_PROMPTS, briefing: str | None = None) -> list[dict]:
    """The Thinker's prompt; with a ``briefing`` (text only the Thinker sees) the
    ``thinker_briefing_user`` template."""
    if briefing:
        return _chat(prompts.thinker_system, prompts.thinker_briefing_user.format(problem=problem, briefing=briefing))
    return _chat(prompts.thinker_system, prompts.thinker_user.format(problem=problem))


def solver_messages(problem: str, thought: str, prompts: PromptSet = DEFAULT_PROMPTS) -> list[dict]:
    return _chat(prompts.solver_system, prompts.solver_user.format(problem=problem, thought=thought))


def solo_messages(problem: str, prompts: PromptSet = DEFAULT_PROMPTS) -> list[dict]:
    return _chat(prompts.solo_system, prompts.solo_user.format(problem=problem))


def rating_messages(
    problem: str,
    thought: str,
    answer: str,
    correct: bool,
    role: str,
    prompts: PromptSet = DEFAULT_PROMPTS,
) -> list[dict]:
    """The SEPO rating prompt (docs/method.md#sepo) for ``role`` ("Thinker" or "Solver")."""
    pairs = ", ".join(f"[{t}, {s}]" for t, s in RATING_PAIRS)
    outcome = "correct" if correct else "wrong"
    return _chat(
        prompts.rater_system.format(pairs=pairs),
        prompts.rater_user.format(
            problem=problem,
            thought=thought,
            answer=answer,
            outcome=outcome,
            role=role,
            outcome_word="credit" if correct else "blame",
        ),
    )


#: The role word each rater (agent name) is addressed with in its SEPO rating prompt.
RATER_ROLES: dict[str, str] = {"thinker_0": "Thinker", "solver_0": "Solver"}


def rating_prompts(problem: str, thought: str, answer: str, correct: bool,
                   prompts: PromptSet | None = None) -> dict[str, list[dict]]:
    """Each rater's chat prompt for one finished transcript: ``{agent: messages}`` (docs/method.md#sepo)."""
    return {
        agent: rating_messages(problem, thought, answer, correct, role, prompts or DEFAULT_PROMPTS)
        for agent, role in RATER_ROLES.items()
    }
