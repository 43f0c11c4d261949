"""Every role's prompt template, in one place (docs/method.md#the-game and #sepo).

The environment defines the roles, so it owns the prompts: a policy only ever receives chat
messages. Users override any template by passing a :class:`PromptSet` (or keyword overrides to
:func:`prompt_set`) to :class:`~thinksolve_env.env.ThinkSolveEnv`.

Templates are ``str.format`` strings; the placeholders each one accepts are listed beside it.

Chains of N roles (METHOD.md §10): position 0 uses the Thinker's templates, the last position the
Solver's (``solo_*`` when no predecessor is present), the middle positions the ``relay_*`` ones.
With two roles every prompt is the two-role game's, unchanged. With three or more, a template
still at its two-role default that names the two-agent team (``thinker_system``,
``solver_system``, ``solver_user``) is replaced by its chain counterpart (:data:`CHAIN_DEFAULTS`);
templates you set are used as they are. ``PromptSet.per_role`` overrides any template for one
role (``{"critic_0": {"relay_system": "..."}}``); :meth:`PromptSet.for_role` is the set in force
for a role, and :func:`role_messages` builds any position's prompt.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

__all__ = [
    "PromptSet",
    "DEFAULT_PROMPTS",
    "prompt_set",
    "strip_trailing_boxed",
    "prepare_thought",
    "thinker_messages",
    "solver_messages",
    "solo_messages",
    "relay_messages",
    "role_messages",
    "chain_thought",
    "predecessor_text",
    "CHAIN_DEFAULTS",
    "CHAIN_TEMPLATES",
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
# Chains of three or more roles (METHOD.md §10): the first, middle and last roles' system prompts.
CHAIN_FIRST_SYSTEM = (
    "You are the first agent in a team that solves a math problem in turns. Read the problem "
    "and write a concise thought for the teammates after you: the approach, key observations "
    "and useful intermediate results. Do not state the final answer and do not use \\boxed{}."
)
RELAY_SYSTEM = (
    "You are a middle agent in a team that solves a math problem in turns. You are given the "
    "problem and the messages of the teammates before you. Check them, fix any mistake, and "
    "write an improved thought for the next teammate: the approach, key observations and "
    "useful intermediate results. Do not state the final answer and do not use \\boxed{}."
)
CHAIN_LAST_SYSTEM = (
    "You are the last agent in a team that solves a math problem in turns. You are given the "
    "problem and the messages of the teammates before you. Use them if they help, solve the "
    "problem step by step, and put your final answer in \\boxed{}."
)
CHAIN_SOLVER_USER = "Problem:\n{problem}\n\nMessages from your teammates:\n{thought}"

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

    Chains of three or more roles (the middle positions; never used by a two-role team):

    - ``relay_system``: the middle roles' system prompt (no placeholders)
    - ``relay_user``: ``{problem}``, ``{thought}`` (the present predecessors' messages)
    - ``relay_solo_user``: ``{problem}`` (no predecessor is present)
    - ``briefed_user``: ``{user}``, ``{briefing}``: the user text of a middle or last position
      that gets a briefing of its own (``Problem.meta["briefings"]``), ``{user}`` being the text
      it would get without one (position 0 uses ``thinker_briefing_user``)
    - ``relay_message``: ``{role}``, ``{message}``: one predecessor's message in ``{thought}``
      when N >= 3 (with two roles the Thinker's thought is handed over bare, as always)

    ``per_role`` maps a role name to template overrides for that role alone, e.g.
    ``{"critic_0": {"relay_system": "You are the critic..."}}`` (keys: the fields above).
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
    relay_system: str = RELAY_SYSTEM
    relay_user: str = CHAIN_SOLVER_USER
    relay_solo_user: str = (
        "Problem:\n{problem}\n\n(No message from the teammates before you: write the thought "
        "from the problem alone.)"
    )
    briefed_user: str = "{user}\n\nBriefing (only you can see it):\n{briefing}"
    relay_message: str = "Message from {role}:\n{message}"
    per_role: Mapping[str, Mapping[str, str]] = field(default_factory=dict, hash=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "per_role", _check_per_role(self.per_role))

    def replace(self, **overrides: str) -> PromptSet:
        return prompt_set(self, **overrides)

    def for_role(self, role: str | None = None, n_roles: int = 2) -> PromptSet:
        """The templates in force for ``role`` in a chain of ``n_roles``: with ``n_roles >= 3``
        the two-role defaults that name the two-agent team are swapped for their chain
        counterparts (:data:`CHAIN_DEFAULTS`), then ``per_role[role]`` is applied. With two roles
        and no per-role overrides this is the set itself."""
        swap = {}
        if n_roles >= 3:
            swap = {k: v for k, (two, v) in CHAIN_DEFAULTS.items() if getattr(self, k) == two}
        swap.update(self.per_role.get(role, {}) if role is not None else {})
        return dataclasses.replace(self, **swap) if swap else self


#: The two-role default texts that a chain of N >= 3 roles replaces (when still at their
#: default): template -> (two-role default, chain default).
CHAIN_DEFAULTS: dict[str, tuple[str, str]] = {
    "thinker_system": (THINKER_SYSTEM, CHAIN_FIRST_SYSTEM),
    "solver_system": (SOLVER_SYSTEM, CHAIN_LAST_SYSTEM),
    "solver_user": (PromptSet.solver_user, CHAIN_SOLVER_USER),
}

_FIELDS = {f.name for f in dataclasses.fields(PromptSet)}
_TEMPLATES = _FIELDS - {"per_role"}

#: Middle-role templates for the named prompt sets (``algorithms.config.PROMPT_SETS``): the
#: ``compact`` set's one-line style for chains of three or more roles.
CHAIN_TEMPLATES: dict[str, dict[str, str]] = {
    "default": {},
    "compact": {
        "relay_system": "Relay: check the thoughts, improve them for the next agent, no final answer.",
        "relay_user": "{problem}\nThoughts: {thought}",
        "relay_solo_user": "{problem}",
        "briefed_user": "{user}\nNotes: {briefing}",
        "relay_message": "{role}: {message}",
    },
}


def _check_per_role(per_role: object) -> dict[str, dict[str, str]]:
    if per_role is None:
        return {}
    if not isinstance(per_role, Mapping):
        raise TypeError(f"per_role must map role names to template overrides, got {type(per_role).__name__}")
    out: dict[str, dict[str, str]] = {}
    for role, overrides in per_role.items():
        if not isinstance(role, str) or not role:
            raise TypeError(f"per_role: role names must be non-empty strings, got {role!r}")
        if not isinstance(overrides, Mapping):
            raise TypeError(f"per_role[{role!r}] must map template names to texts, got {type(overrides).__name__}")
        unknown = set(overrides) - _TEMPLATES
        if unknown:
            raise ValueError(f"per_role[{role!r}]: unknown prompt template(s) {sorted(unknown, key=str)}; "
                             f"known: {sorted(_TEMPLATES)}")
        for k, v in overrides.items():
            if not isinstance(v, str):
                raise TypeError(f"per_role[{role!r}][{k!r}] must be a str, got {type(v).__name__}")
        out[role] = dict(overrides)
    return out


DEFAULT_PROMPTS = PromptSet()


def prompt_set(base: PromptSet | None = None, **overrides: str) -> PromptSet:
    """A :class:`PromptSet` with some templates overridden; unknown names are an error.
    ``per_role={role: {template: text}}`` sets per-role overrides (it replaces the base's)."""
    unknown = set(overrides) - _FIELDS
    if unknown:
        raise ValueError(f"unknown prompt template(s) {sorted(unknown)}; known: {sorted(_FIELDS)}")
    for k, v in overrides.items():
        if k != "per_role" and not isinstance(v, str):
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


def relay_messages(problem: str, thought: str | None, prompts: PromptSet = DEFAULT_PROMPTS,
                   briefing: str | None = None) -> list[dict]:
    """A middle role's prompt: ``relay_user`` with the predecessors' messages, ``relay_solo_user``
    when ``thought`` is None (no predecessor present); with a ``briefing``, wrapped in
    ``briefed_user``."""
    if thought is None:
        user = prompts.relay_solo_user.format(problem=problem)
    else:
        user = prompts.relay_user.format(problem=problem, thought=thought)
    return _chat(prompts.relay_system, _brief(user, briefing, prompts))


def _brief(user: str, briefing: str | None, prompts: PromptSet) -> str:
    return prompts.briefed_user.format(user=user, briefing=briefing) if briefing else user


def role_messages(problem: str, position: int, n_roles: int, thought: str | None,
                  prompts: PromptSet = DEFAULT_PROMPTS, *, role: str | None = None,
                  briefing: str | None = None) -> list[dict]:
    """The chat prompt of the role at ``position`` (0-based) of a chain of ``n_roles``.

    ``thought`` is what the role is shown from its present predecessors (:func:`predecessor_text`),
    None when none is present; ``role`` selects ``prompts.per_role`` overrides; ``briefing`` is
    the text meant for this position alone. Position 0 gets the Thinker's prompt, the last
    position the Solver's (solo when ``thought`` is None), the others the relay prompt. With two
    roles and no per-role overrides these are exactly :func:`thinker_messages`,
    :func:`solver_messages` and :func:`solo_messages`.
    """
    if not isinstance(n_roles, int) or n_roles < 2:
        raise ValueError(f"n_roles must be an integer >= 2, got {n_roles!r}")
    if not isinstance(position, int) or not 0 <= position < n_roles:
        raise ValueError(f"position must be in 0..{n_roles - 1}, got {position!r}")
    ps = prompts.for_role(role, n_roles)
    if position == 0:
        return thinker_messages(problem, ps, briefing=briefing)
    if position < n_roles - 1:
        return relay_messages(problem, thought, ps, briefing=briefing)
    if thought is None:
        if briefing:
            return _chat(ps.solo_system, _brief(ps.solo_user.format(problem=problem), briefing, ps))
        return solo_messages(problem, ps)
    if briefing:
        return _chat(ps.solver_system, _brief(ps.solver_user.format(problem=problem, thought=thought), briefing, ps))
    return solver_messages(problem, thought, ps)


def chain_thought(messages: Sequence[tuple[str, str]], max_chars: int | None,
                  prompts: PromptSet = DEFAULT_PROMPTS) -> str:
    """The predecessors' messages as one text for a role of a chain of three or more: each
    ``(role, text)`` in chain order, one trailing box stripped, labelled with ``relay_message``
    and separated by a blank line. The whole stays within ``max_chars`` (None: no limit): when
    it would not, the longest messages are cut (keeping their beginnings) to equal shares of
    what the labels leave, so a short message is never cut for a long one."""
    texts = [(role, strip_trailing_boxed(text)) for role, text in messages]
    sep = "\n\n"
    if max_chars is not None and texts:
        overhead = sum(len(prompts.relay_message.format(role=r, message="")) for r, _ in texts)
        budget = max_chars - overhead - len(sep) * (len(texts) - 1)
        lengths = [len(t) for _, t in texts]
        if sum(lengths) > budget:
            allot = _water_fill(lengths, max(budget, 0))
            texts = [(r, t[:a]) for (r, t), a in zip(texts, allot, strict=True)]
    out = sep.join(prompts.relay_message.format(role=r, message=t) for r, t in texts)
    return out if max_chars is None else out[:max_chars]


def _water_fill(lengths: list[int], budget: int) -> list[int]:
    """Integer shares of ``budget`` for texts of ``lengths``: short texts keep their length, the
    rest split what is left equally (the remainder to the earliest of them)."""
    allot = list(lengths)
    left, open_ = budget, sorted(range(len(lengths)), key=lambda i: lengths[i])
    while open_:
        share = left // len(open_)
        if lengths[open_[0]] <= share:
            i = open_.pop(0)
            left -= lengths[i]
            continue
        extra = left - share * len(open_)
        for j in sorted(open_):
            allot[j] = share + (1 if extra > 0 else 0)
            extra -= 1
        break
    return allot


def predecessor_text(messages: Sequence[tuple[str, str]], n_roles: int, max_chars: int | None,
                     prompts: PromptSet = DEFAULT_PROMPTS) -> str | None:
    """What a role is shown from its present predecessors' ``(role, text)`` messages, in chain
    order: None when there are none; with two roles the Thinker's thought as always
    (:func:`prepare_thought`, no label); with three or more :func:`chain_thought`."""
    if not messages:
        return None
    if n_roles == 2:
        (_, text), = messages
        return prepare_thought(text, max_chars)
    return chain_thought(messages, max_chars, prompts)


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
