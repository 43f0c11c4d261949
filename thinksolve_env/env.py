"""# Think–Solve

| Import             | `from thinksolve_env import ThinkSolveEnv, env, parallel_env` |
|--------------------|----------------------------------------------------------------|
| Actions            | text (`str`)                                                    |
| Parallel API       | yes, turn-based (`parallel_env`)                                |
| Manual control     | no                                                              |
| Agents             | `agents = list(roles)`, default `["thinker_0", "solver_0"]`     |
| Number of agents   | N = `len(roles)` >= 2 (default 2), a chain in turn order       |
| Action space       | `UnicodeText(max_length=role limit)`                            |
| Observation space  | `Dict(problem=UnicodeText, thought=UnicodeText)`                |
| Reward             | verifier reward, +1 correct / −1 wrong, to every acting agent   |

Two LLM agents (by default; see *Chains of N roles* for more) collaborate on one math problem.
The **Thinker** (`thinker_0`) writes a thought (approach, observations, intermediate results;
no final answer). The **Solver** (`solver_0`) reads the problem and the thought and writes an
answer ending in `\\boxed{...}`. A verifier compares the last boxed answer with the reference
and both agents receive R = ±1.

### Chains of N roles (`roles=`, METHOD.md §10)
`roles` names the team in chain order, e.g. `("planner_0", "critic_0", "solver_0")`; the default
`("thinker_0", "solver_0")` is the two-role game above, bit for bit. Position 0 writes a thought
with the Thinker's templates, each middle position reads the problem and the messages of the
present roles before it and writes a thought for the next (`relay_*` templates, no final
answer), and the last position writes the boxed answer with the Solver's templates (`solo_*`
when no predecessor is present). Every agent gets the same reward; `infos[agent]["role"]` is
`"thinker"`, `"relay"` or `"solver"` by position. With N >= 3 a role's `thought` is every
present predecessor's message, one trailing box stripped, labelled by its role in chain order
(`PromptSet.relay_message`) and the whole kept within `solver_thought_chars` (long messages cut
to equal shares); `env.shown[agent]` holds the text each agent was shown this episode ("" for one
that was shown nothing).

### Chat prompts
A policy never builds a prompt: when it is an agent's turn, `infos[agent]["messages"]` holds its
chat prompt (a list of `{"role", "content"}` dicts, from :mod:`thinksolve_env.prompts`). Before
the thought reaches the Solver, one trailing `\\boxed{...}` is stripped from it and it is cut to
`solver_thought_chars` characters (keeping its beginning).

### Observations
`{"problem": str, "thought": str}` — the thought is empty for the Thinker and for a solo
Solver (with N roles: what the agent is shown, `env.shown[agent]`). PettingZoo's test suite
checks the `"observation"` key of a Dict space for dtype; this one has none, so the text fields
pass `api_test`.

### Briefings
A problem may carry text that only the Thinker sees, `Problem.meta["briefing"]` (the `arith:`
task's `brief=1` option puts the worked steps there). With `briefing=True` (the default) the env
renders it into the Thinker's prompt alone (template `thinker_briefing_user`); the Solver, the
solo Solver and the raters never see it, so a thought is the only way it reaches the answer.
`Problem.meta["briefings"]` (a list with one entry per chain position, str or None) gives any
position a briefing of its own: position 0's through `thinker_briefing_user`, the others' user
text wrapped in `briefed_user`; each reaches only its own position's prompt. A list of the
wrong length, a non-string entry, one longer than `max_problem_chars` or a position-0 entry
that differs from `meta["briefing"]` is refused at construction, naming the problem.
`briefing=False` ignores both.

### Counterfactual removal (`reset(options={"remove": ...})`)
| removed   | who acts                        | reward                                   |
|-----------|---------------------------------|------------------------------------------|
| nobody    | Thinker, then Solver            | R_joint = R(answer)                      |
| Thinker   | Solver alone, solo prompt       | R_¬T = R(answer)                         |
| Solver    | Thinker alone                   | R_¬S = R(the thought's own final answer) |
| both      | nobody (`agents` is empty)      | R_∅ = −1                                 |

With N roles `remove` takes one agent name or any iterable of names (any subset; an unknown
name is a `ValueError`): the remaining agents act in chain order, each shown only the messages
of the present roles before it, and the text of the LAST PRESENT role is verified (as the
Thinker's is when the Solver is removed); with nobody present R = −1 and `agents` is empty.
`infos[agent]["mode"]` is `"joint"` (nobody removed), `"solo"` (a later role with no present
predecessor) or `"partial"` for N >= 3; the two-role modes are as in the table.

A removed agent is not in `agents` for that episode. `env.outcome` (a dict: `reward`,
`verification`, `removed`, `problem_id`, `actions`) holds the team result of the last finished
episode in every mode, including the one where nobody acts.

### Episode end
After the last acting agent's step every present agent is terminated, `rewards[agent]` is R and
`infos[agent]["verification"]` is the verifier's record (`reward`, `correct`, `extracted`,
`reason`, `reference`). An action longer than the role's limit is cut to the limit and
`infos[agent]["action_truncated"]` is set; lone surrogate code points (not encodable text) are
replaced by U+FFFD and `infos[agent]["action_sanitized"]` is set. Neither raises mid-rollout.

### Arguments
`ThinkSolveEnv(problems, *, verifier=None, render_mode=None, prompts=None,
max_thought_chars=16384, max_answer_chars=24576, solver_thought_chars=12000, briefing=True,
max_problem_chars=16000, roles=None)`:
`problems` is a list of :class:`Problem` or anything :func:`load_problems` reads; `verifier`
defaults to a :class:`MathVerifier` owned (and closed) by the env. A problem longer than
``max_problem_chars`` (``0``: no limit) is refused at construction, naming it. ``roles``: at
least 2 distinct, non-empty agent names in chain order (default :data:`ROLES`); the first
N − 1 roles write up to ``max_thought_chars``, the last up to ``max_answer_chars``. A
``PromptSet.per_role`` naming a role not in the team is refused.

### Version history
* v0: initial release; chains of N roles (`roles=`) and removal of any subset added without
  changing the two-role game.
"""

from __future__ import annotations

import functools
import string
import warnings
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
from gymnasium import spaces
from gymnasium.utils import seeding
from pettingzoo import AECEnv, ParallelEnv
from pettingzoo.utils import AgentSelector, wrappers
from pettingzoo.utils.conversions import turn_based_aec_to_parallel_wrapper

from . import prompts as P
from .problems import MAX_PROBLEM_CHARS, Problem, ProblemFormatError, check_lengths, load_problems
from .verifier import MathVerifier, Verification, Verifier

__all__ = ["ThinkSolveEnv", "raw_env", "env", "parallel_env", "UnicodeText", "THINKER", "SOLVER", "ROLES"]

THINKER = "thinker_0"
SOLVER = "solver_0"
#: The default roles, in turn order (the two-role team; ``ThinkSolveEnv(roles=...)`` takes a chain).
ROLES = (THINKER, SOLVER)


# --------------------------------------------------------------------------- text spaces


@functools.lru_cache(maxsize=1)
def _sampling_alphabet() -> str:
    """An ordered, wide alphabet for sampling: printable ASCII, Latin-1, Greek, math
    operators, arrows, super/subscripts, full-width forms, some CJK and a few astral symbols."""
    ranges = [
        (0x00A0, 0x0180),  # Latin-1 supplement, Latin extended-A
        (0x0391, 0x03CA),  # Greek
        (0x2000, 0x206F),  # general punctuation
        (0x2070, 0x209F),  # super/subscripts
        (0x2190, 0x21FF),  # arrows
        (0x2200, 0x22FF),  # mathematical operators
        (0xFF01, 0xFF5F),  # full-width forms
        (0x4E00, 0x4F00),  # a slice of CJK
    ]
    chars = [string.printable]
    chars += ["".join(chr(c) for c in range(a, b)) for a, b in ranges]
    chars.append("\U0001d465\U0001d466\U0001f600\U0001f914")  # 𝑥 𝑦 😀 🤔
    return "".join(dict.fromkeys("".join(chars)))


class UnicodeText(spaces.Text):
    """A Gymnasium ``Text`` space over *all* Unicode scalar values.

    ``contains`` accepts any ``str`` within the length bounds whose characters are Unicode
    scalar values (every code point except the UTF-16 surrogates U+D800–U+DFFF, which are
    not encodable text). ``sample`` draws from an explicit, ordered sampling alphabet of a few
    thousand characters (ASCII, Latin, Greek, math symbols, arrows, full-width forms, CJK and
    astral symbols), so seeded samples are reproducible across processes. Model text, LaTeX
    and arbitrary Unicode therefore round-trip through the environment unchanged.
    """

    def __init__(self, max_length: int, *, min_length: int = 0, seed: int | np.random.Generator | None = None) -> None:
        super().__init__(max_length, min_length=min_length, charset=_sampling_alphabet(), seed=seed)

    def contains(self, x: Any) -> bool:
        if not isinstance(x, str) or not self.min_length <= len(x) <= self.max_length:
            return False
        try:
            x.encode("utf-8")
        except UnicodeEncodeError:
            return False
        return True

    def __repr__(self) -> str:
        return f"UnicodeText({self.min_length}, {self.max_length})"

    def __eq__(self, other: Any) -> bool:
        if not isinstance(other, UnicodeText):
            return False
        return (self.min_length, self.max_length) == (other.min_length, other.max_length)


def _sanitize(text: str) -> tuple[str, bool]:
    """Replace lone surrogates (not encodable) with U+FFFD; report whether anything changed."""
    try:
        text.encode("utf-8")
        return text, False
    except UnicodeEncodeError:
        return "".join("\ufffd" if 0xD800 <= ord(c) <= 0xDFFF else c for c in text), True


def _check_roles(roles: Sequence[str] | None) -> tuple[str, ...]:
    """The team's agent names in chain order (default :data:`ROLES`), checked."""
    if roles is None:
        return ROLES
    if isinstance(roles, str) or not isinstance(roles, Iterable):
        raise ValueError(f"roles must be a sequence of agent names in chain order, e.g. {list(ROLES)}; got {roles!r}")
    roles = tuple(roles)
    bad = [r for r in roles if not isinstance(r, str) or not r.strip()]
    if bad:
        raise ValueError(f"roles must be non-empty strings (agent names); got {bad} in {list(roles)}")
    if len(roles) < 2:
        raise ValueError(f"roles needs at least 2 agent names (a chain of N >= 2 roles); got {list(roles)}")
    dup = sorted({r for r in roles if roles.count(r) > 1})
    if dup:
        raise ValueError(f"roles must be distinct; {dup} appear more than once in {list(roles)}")
    return roles


def _position_briefings(i: int, p: Problem, n: int, max_chars: int) -> tuple[str | None, ...]:
    """Problem ``p``'s briefing for each of the ``n`` chain positions: ``meta["briefing"]`` for
    position 0, ``meta["briefings"]`` (one entry per position, None for none) for any position."""
    meta = p.meta if isinstance(p.meta, dict) else {}
    out: list[str | None] = [meta.get("briefing")] + [None] * (n - 1)
    per = meta.get("briefings")
    if per is None:
        return tuple(out)
    where = f"problems[{i}] ({p.id!r}): meta['briefings']"
    if isinstance(per, str) or not isinstance(per, Sequence):
        raise TypeError(f"{where} must be a list with one entry (str or None) per chain position, got {type(per).__name__}")
    if len(per) != n:
        raise ValueError(f"{where} has {len(per)} entries but the team has {n} roles; give one (str or None) per position")
    for k, b in enumerate(per):
        if b is None:
            continue
        if not isinstance(b, str):
            raise TypeError(f"{where}[{k}] must be a string or None, got {type(b).__name__}")
        if max_chars and len(b) > max_chars:
            raise ProblemFormatError(
                f"{where}[{k}] is {len(b):,} characters long, over the limit of {max_chars:,}: refused rather "
                f"than cut; shorten it, or lift the limit with max_problem_chars=0")
        if k == 0 and out[0] is not None and b != out[0]:
            raise ValueError(f"{where}[0] and meta['briefing'] differ; give position 0's briefing once")
        out[k] = b
    return tuple(out)


# --------------------------------------------------------------------------- the env


class raw_env(AECEnv):
    """The Think–Solve environment (see the module docstring for the card)."""

    metadata = {
        "name": "think_solve_v0",
        "render_modes": ["ansi", "human"],
        "is_parallelizable": False,
    }

    def __init__(
        self,
        problems: Iterable[Problem] | str,
        *,
        verifier: Verifier | None = None,
        render_mode: str | None = None,
        prompts: P.PromptSet | None = None,
        max_thought_chars: int = 16384,
        max_answer_chars: int = 24576,
        solver_thought_chars: int | None = 12000,
        briefing: bool = True,
        max_problem_chars: int = MAX_PROBLEM_CHARS,
        roles: Sequence[str] | None = None,
    ) -> None:
        super().__init__()
        self.roles: tuple[str, ...] = _check_roles(roles)
        n = len(self.roles)
        if isinstance(problems, str):
            problems = load_problems(problems)
        self.problems: list[Problem] = list(problems)
        if not self.problems:
            raise ValueError("ThinkSolveEnv needs at least one problem; the problem list is empty")
        for i, p in enumerate(self.problems):
            if not isinstance(p, Problem):
                raise TypeError(f"problems[{i}] must be a Problem, got {type(p).__name__}")
        check_lengths(self.problems, max_problem_chars, "ThinkSolveEnv", knob="max_problem_chars=0")
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(
                f"render_mode must be one of {self.metadata['render_modes']} or None, got {render_mode!r}"
            )
        for name, v in (("max_thought_chars", max_thought_chars), ("max_answer_chars", max_answer_chars)):
            if not isinstance(v, int) or v < 1:
                raise ValueError(f"{name} must be a positive integer, got {v!r}")
        if solver_thought_chars is not None and (not isinstance(solver_thought_chars, int) or solver_thought_chars < 0):
            raise ValueError(
                f"solver_thought_chars must be a non-negative integer or None, got {solver_thought_chars!r}"
            )
        if not isinstance(briefing, bool):
            raise TypeError(f"briefing must be True or False, got {briefing!r}")
        for i, p in enumerate(self.problems):
            b = p.meta.get("briefing") if isinstance(p.meta, dict) else None
            if briefing and b is not None and not isinstance(b, str):
                raise TypeError(f"problems[{i}] ({p.id!r}): meta['briefing'] must be a string, got {type(b).__name__}")
        self.briefing = briefing
        #: Per problem, the briefing of each chain position (None: none); all None with briefing=False.
        self._briefings = [
            _position_briefings(i, p, n, max_problem_chars) if briefing else (None,) * n
            for i, p in enumerate(self.problems)
        ]
        self.render_mode = render_mode
        self.prompts = prompts or P.DEFAULT_PROMPTS
        stray = sorted(set(self.prompts.per_role) - set(self.roles))
        if stray:
            raise ValueError(f"prompts.per_role names role(s) {stray} that are not in the team {list(self.roles)}")
        #: Each role's action limit: the last role answers (max_answer_chars), the others think.
        self.max_chars = dict.fromkeys(self.roles[:-1], max_thought_chars) | {self.roles[-1]: max_answer_chars}
        self.solver_thought_chars = solver_thought_chars
        self._owns_verifier = verifier is None
        self._verifier = verifier
        self._index = {p.id: i for i, p in enumerate(self.problems)}
        if len(self._index) != len(self.problems):
            warnings.warn("problem ids are not unique; reset(options={'problem': id}) picks the last one", stacklevel=2)

        self.possible_agents = list(self.roles)
        longest_problem = max(len(p.problem) for p in self.problems)
        problem_space = UnicodeText(max(4096, longest_problem))
        if n == 2:
            thought_cap = max_thought_chars
            if solver_thought_chars is not None:
                thought_cap = min(max_thought_chars, solver_thought_chars)
        else:
            # The longest possible rendering of every predecessor's message, labels included.
            thought_cap = max(self._shown_bound(a) for a in self.roles)
            if solver_thought_chars is not None:
                thought_cap = min(thought_cap, solver_thought_chars)
        self._observation_spaces = {
            a: spaces.Dict({"problem": problem_space, "thought": UnicodeText(thought_cap)}) for a in self.roles
        }
        self._action_spaces = {a: UnicodeText(self.max_chars[a]) for a in self.roles}
        self._np_random, self._np_random_seed = seeding.np_random(None)
        # Episode state (filled by reset).
        self.agents: list[str] = []
        self.problem: Problem | None = None
        self.removed: frozenset[str] = frozenset()
        self.actions: dict[str, str] = {}
        self.thought_for_solver: str | None = None
        self.shown: dict[str, str] = {}
        self.outcome: dict | None = None

    def _shown_bound(self, reader: str) -> int:
        """The longest text ``reader`` can be shown (no cut): every predecessor's whole message,
        labelled, separated by blank lines."""
        k = self.roles.index(reader)
        label = self.prompts.for_role(reader, len(self.roles)).relay_message
        return sum(len(label.format(role=r, message="")) + self.max_chars[r] for r in self.roles[:k]) + 2 * max(k - 1, 0)

    # -- spaces -----------------------------------------------------------------------
    def observation_space(self, agent: str) -> spaces.Space:
        return self._observation_spaces[agent]

    def action_space(self, agent: str) -> spaces.Space:
        return self._action_spaces[agent]

    @property
    def verifier(self) -> Verifier:
        if self._verifier is None:
            self._verifier = MathVerifier()
        return self._verifier

    # -- episode --------------------------------------------------------------------------
    def _pick_problem(self, choice: Any) -> int:
        if choice is None:
            return int(self._np_random.integers(len(self.problems)))
        if isinstance(choice, (int, np.integer)) and not isinstance(choice, bool):
            if not -len(self.problems) <= choice < len(self.problems):
                raise IndexError(f"options['problem']={choice} is out of range for {len(self.problems)} problems")
            return int(choice) % len(self.problems)
        if isinstance(choice, str):
            if choice not in self._index:
                raise KeyError(f"options['problem']={choice!r}: no problem with that id")
            return self._index[choice]
        raise TypeError(f"options['problem'] must be an index or a problem id, got {type(choice).__name__}")

    def _parse_remove(self, remove: Any) -> frozenset[str]:
        if remove is None:
            return frozenset()
        if isinstance(remove, str):
            names = [remove]
        elif isinstance(remove, Iterable):
            names = list(remove)
        else:
            raise TypeError(
                f"options['remove'] must be None, an agent name or an iterable of agent names, got {remove!r}"
            )
        bad = [n for n in names if n not in self.roles]
        if bad:
            raise ValueError(f"options['remove']: unknown agent(s) {bad}; choose from {list(self.roles)}")
        return frozenset(names)

    def reset(self, seed: int | None = None, options: dict | None = None) -> None:
        if seed is not None:
            self._np_random, self._np_random_seed = seeding.np_random(seed)
        options = dict(options or {})
        unknown = sorted(set(options) - {"problem", "remove"}, key=str)
        if unknown:
            warnings.warn(
                f"ThinkSolveEnv.reset: ignoring unknown option(s) {unknown}; known options: 'problem', 'remove'",
                stacklevel=2,
            )
        idx = self._pick_problem(options.get("problem"))
        self.removed = self._parse_remove(options.get("remove"))
        self.problem = self.problems[idx]
        self._problem_index = idx
        self.actions = {}
        self.thought_for_solver = None
        self.shown = {}
        self.outcome = None

        self.agents = [a for a in self.possible_agents if a not in self.removed]
        self.rewards = dict.fromkeys(self.agents, 0.0)
        self._cumulative_rewards = dict.fromkeys(self.agents, 0.0)
        self.terminations = dict.fromkeys(self.agents, False)
        self.truncations = dict.fromkeys(self.agents, False)
        self.infos = {a: self._base_info(a) for a in self.agents}
        if not self.agents:
            # Nobody answers: R_∅ = −1 (docs/method.md#counterfactual-removal).
            self._finish(Verification.judged(False, None, "no-answer", self.problem.answer))
            self.agent_selection = None
            return
        self._agent_selector = AgentSelector(self.agents)
        self.agent_selection = self._agent_selector.reset()
        self._start_turn(self.agent_selection)

    def _base_info(self, agent: str) -> dict:
        k, n = self.roles.index(agent), len(self.roles)
        first_present = not any(a in self.agents for a in self.roles[:k])
        if n == 2:
            solo = k == 1 and first_present
            mode = "solo" if solo else ("thinker-only" if self.roles[1] in self.removed else "joint")
        else:
            mode = "joint" if not self.removed else ("solo" if k > 0 and first_present else "partial")
        return {
            "role": "thinker" if k == 0 else ("solver" if k == n - 1 else "relay"),
            "problem_id": self.problem.id,
            "mode": mode,
            "messages": None,
        }

    def _start_turn(self, agent: str) -> None:
        """``agent``'s turn begins: render what it is shown and its chat prompt."""
        k, n = self.roles.index(agent), len(self.roles)
        before = [(a, self.actions[a]) for a in self.roles[:k] if a in self.actions]
        shown = P.predecessor_text(before, n, self.solver_thought_chars, self.prompts.for_role(agent, n))
        self.shown[agent] = shown or ""
        if k == n - 1:
            self.thought_for_solver = shown
        self.infos[agent]["messages"] = self._messages(agent, shown)

    def _messages(self, agent: str, shown: str | None) -> list[dict]:
        k = self.roles.index(agent)
        brief = self._briefings[self._problem_index][k]
        return P.role_messages(self.problem.problem, k, len(self.roles), shown, self.prompts,
                               role=agent, briefing=brief)

    def observe(self, agent: str) -> dict:
        return {"problem": self.problem.problem, "thought": self.shown.get(agent, "")}

    def step(self, action: Any) -> None:
        if self.agent_selection is None or not self.agents:
            raise RuntimeError("step() called but the episode is over (no live agents); call reset() first")
        agent = self.agent_selection
        if self.terminations[agent] or self.truncations[agent]:
            self._was_dead_step(action)
            return
        if not isinstance(action, str):
            raise TypeError(f"the action for {agent} must be a str (the agent's text), got {type(action).__name__}")
        info = self.infos[agent]
        action, sanitized = _sanitize(action)
        if sanitized:
            info["action_sanitized"] = True
        limit = self.max_chars[agent]
        if len(action) > limit:
            info["action_truncated"] = True
            info["action_original_length"] = len(action)
            action = action[:limit]
        self.actions[agent] = action
        self._cumulative_rewards[agent] = 0.0
        self._clear_rewards()

        if agent != self.agents[-1]:
            self.agent_selection = self._agent_selector.next()
            self._start_turn(self.agent_selection)
        else:
            # The last present agent has spoken: verify its text (the Thinker's when the Solver
            # is removed, docs/method.md#counterfactual-removal) and end the episode for everyone.
            self._finish(self.verifier.verify(action, self.problem.answer))
            self.agent_selection = self._agent_selector.next()
        self._accumulate_rewards()
        if self.render_mode == "human":
            self.render()

    def _finish(self, verification: Verification) -> None:
        record = verification.to_dict()
        record.setdefault("reference", self.problem.answer)
        record["reference"] = record["reference"] or self.problem.answer
        r = float(verification.reward)
        for a in self.agents:
            self.rewards[a] = r
            self.terminations[a] = True
            self.infos[a]["verification"] = dict(record)
        self.outcome = {
            "reward": r,
            "verification": dict(record),
            "removed": sorted(self.removed),
            "problem_id": self.problem.id,
            "actions": dict(self.actions),
        }

    # -- rendering ----------------------------------------------------------------------
    def _transcript(self) -> str:
        if self.problem is None:
            return "ThinkSolveEnv: call reset() first"
        lines = [f"[{self.problem.id}] {self.problem.problem}"]
        if self.removed:
            lines.append(f"(removed: {', '.join(sorted(self.removed))})")
        for a in self.roles:
            if a in self.actions:
                lines.append(f"--- {a} ---\n{self.actions[a]}")
        if self.outcome is not None:
            v = self.outcome["verification"]
            lines.append(
                f"=== reward {self.outcome['reward']:+.0f} ({v['reason']}; extracted {v['extracted']!r}, "
                f"reference {self.problem.answer!r})"
            )
        return "\n".join(lines)

    def render(self) -> str | None:
        if self.render_mode is None:
            warnings.warn("render() called without a render_mode; pass render_mode='ansi' or 'human'", stacklevel=2)
            return None
        text = self._transcript()
        if self.render_mode == "ansi":
            return text
        print(text)
        return None

    def close(self) -> None:
        if self._owns_verifier and self._verifier is not None:
            self._verifier.close()
            self._verifier = None


#: The environment class users construct directly: ``ThinkSolveEnv(problems, ...)``.
ThinkSolveEnv = raw_env


def env(problems: Iterable[Problem] | str, **kwargs: Any) -> AECEnv:
    """:class:`ThinkSolveEnv` wrapped in PettingZoo's order-enforcing wrapper (``kwargs`` go to
    :class:`ThinkSolveEnv`)."""
    return wrappers.OrderEnforcingWrapper(raw_env(problems, **kwargs))


class _TurnBasedParallel(turn_based_aec_to_parallel_wrapper):
    """PettingZoo's turn-based parallel view, with two fixes: ``infos[agent]["active_agent"]``
    is set after ``reset`` too (not only after ``step``), and stepping a finished episode
    returns the documented 5-tuple instead of a 4-tuple."""

    def reset(self, seed=None, options=None):
        observations, infos = super().reset(seed=seed, options=options)
        for agent in self.aec_env.agents:
            infos[agent]["active_agent"] = self.aec_env.agent_selection
        return observations, infos

    def step(self, actions):
        if not self.agents:
            return {}, {}, {}, {}, {}
        return super().step(actions)


def parallel_env(problems: Iterable[Problem] | str, **kwargs: Any) -> ParallelEnv:
    """The turn-based parallel view: each ``step(actions)`` uses the action of the agent whose
    turn it is (``infos[agent]["active_agent"]`` names it) and ignores the others."""
    return _TurnBasedParallel(env(problems, **kwargs))
