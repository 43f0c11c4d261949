"""Episodes, episode groups, and batched collection with counterfactual replays (docs/method.md#counterfactual-removal, #sepo).

:func:`collect_groups` plays ``group_size`` joint episodes per problem through
:class:`~thinksolve_env.ThinkSolveEnv` (the single definition of the game: prompts, thought
hand-over, verification, removal modes) and adds what the credit method needs
(``needs``, usually ``method.requires``):

* ``"solo"`` — Thinker removed: ``solo_samples`` (m, default = ``group_size``, as in the
  reference) Solver answers per problem from the solo prompt → ``EpisodeGroup.solo_rewards``;
* ``"no_solver"`` — Solver removed: each joint episode's thought is replayed alone and verified,
  no generation → ``Episode.no_solver_reward``;
* ``"ratings"`` — SEPO: each role rates each finished joint transcript → ``Episode.ratings``.

Tree rollouts (docs/method.md#tree-credit): with ``answers_per_thought=K`` each of the n thoughts of a problem
gets K Solver answers (its K joint prompts are identical, so a backend that shares a prompt's
prefill computes it once); a group then holds n·K joint episodes, thought-major (thought j's
answers are episodes j·K … j·K+K−1, each with ``Episode.thought_index = j``), and
``EpisodeGroup.thoughts`` lists the n distinct thoughts. ``K = 1`` (the default) is the flat
collection, bit for bit. The Solver-removed replay verifies each *thought* once (R_¬S does not
depend on the answer) and every sibling carries the result.

Both-removed needs nothing (R_∅ = −1). Every phase is one batched ``generate`` call across all
problems and episodes: one Thinker call; one Solver call holding the joint prompts *and* the
solo prompts; with ratings, one rating call per role. That holds when both roles share one
policy object too (one call per role and phase), except for the ratings: there both raters'
prompts go in one call (they share everything up to the rater's role, which a backend that shares
prefills computes once), counted in ``generate_calls`` under the Thinker and seeded as the
Thinker's rating phase. ``raters=`` hands the ratings to other policies (a judge model) and
``rater_prompts=`` to other templates; the transcripts are the same.

Ratings at their price (the parsed ratings do not change):

* greedy ratings (``rating_temperature=0``): identical rating prompts of one rater (the same
  problem, thought, answer and outcome, as under tree collection when a thought's answers
  coincide) are generated once and the completion is shared by those episodes. A rating rates
  the whole transcript, the answer included, so only identical prompts are merged. Sampled
  ratings stay one independent sample per episode.
* ``rating_stop`` (default: ``needs.rating_stop`` when ``needs`` is a credit method, e.g. SEPO's
  :func:`~algorithms.credit.rating_complete`): a predicate on the rating text, true once more text
  cannot change how the method reads it; policies that support it (``supports_stop``) stop each
  rating there.

How the env is driven: it is deterministic given the problem and the actions, so one env
instance is driven phase by phase — an episode is resumed by resetting to its problem and
removal mode and re-stepping its already generated actions (nothing is regenerated, and a
Thinker step does no verification), then the new action is stepped. The verifier runs once per
finished episode, inside the env.

Sampling: ``sampling=`` a :class:`~.sampling.Sampling`, or its fields as keywords
(``**sampling``): ``temperature`` (1.0), ``top_p`` (1.0), ``seed`` (None; phases use seed,
seed+1, … so they do not share random streams), ``max_new_tokens`` (default for both roles),
``thinker_max_new_tokens`` (4096), ``solver_max_new_tokens`` (6144), ``rating_max_new_tokens``
(512), ``rating_temperature`` (= ``temperature``).

The result is a list of :class:`EpisodeGroup` with a ``.budget`` attribute: ``generate_calls``
per agent, and per phase (``thinker``, ``solver``, ``solo``, ``no_solver``, ``rating_thinker``,
``rating_solver``) the number of ``generations``, generated ``tokens`` and ``verifier_calls``
(per problem: n Thinker generations, n·K joint Solver answers and n·K verifier calls, m solo
answers and m verifier calls, n Solver-removed verifier calls, n·K ratings per rater, fewer when
greedy duplicates are merged: the rating phases count what was generated).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from agents import Completion
from thinksolve_env import ROLES, SOLVER, THINKER, MathVerifier, Problem, ThinkSolveEnv, load_problems
from thinksolve_env.prompts import PromptSet, rating_prompts

from .chain import collect_chain
from .episodes import Collected, Episode, EpisodeGroup
from .needs import NO_SOLVER, RATINGS, SOLO, chain_coalitions, normalize_needs
from .sampling import SAMPLING_DEFAULTS, Sampling

__all__ = ["collect_groups", "SAMPLING_DEFAULTS", "PHASES"]

#: The phases a collection's budget counts (generations, tokens, verifier calls).
PHASES = ("thinker", "solver", "solo", "no_solver", "rating_thinker", "rating_solver")

class _CountingVerifier:
    """Delegates to a verifier and counts how many answers it checked."""

    def __init__(self, inner) -> None:
        self.inner = inner
        self.calls = 0

    def verify(self, text, reference):
        self.calls += 1
        return self.inner.verify(text, reference)

    def verify_batch(self, pairs):
        pairs = list(pairs)
        self.calls += len(pairs)
        return self.inner.verify_batch(pairs)

    def close(self) -> None:  # the owner closes the inner verifier
        pass


def _sampling(sampling: Sampling | None, keywords: dict) -> Sampling:
    if sampling is None:
        try:
            return Sampling.from_keywords(**keywords)
        except TypeError as e:
            raise TypeError(f"collect_groups: {e}") from None
    if not isinstance(sampling, Sampling):
        raise TypeError(f"collect_groups: sampling must be a Sampling, got {type(sampling).__name__}")
    if keywords:
        raise TypeError(f"collect_groups: pass sampling=Sampling(...) or sampling keywords, not both "
                        f"(got sampling= and {sorted(keywords)}; use sampling.replace(...) to change a field)")
    return sampling


def collect_groups(problems: Sequence[Problem] | str, policies: Mapping[str, Any], *, group_size: int, needs: Any,
                   verifier: Any = None, solo_samples: int | None = None, env_options: Mapping[str, Any] | None = None,
                   answers_per_thought: int = 1, sampling: Sampling | None = None,
                   rating_stop: Callable[[str], bool] | None = None, raters: Mapping[str, Any] | None = None,
                   rater_prompts: PromptSet | None = None, roles: Sequence[str] | None = None,
                   **keywords: Any) -> Collected:
    """Play ``group_size`` joint episodes per problem plus the counterfactuals in ``needs``.

    Args:
        problems: a list of :class:`Problem` (or a source :func:`load_problems` reads).
        policies: ``{"thinker_0": policy, "solver_0": policy}`` (the same object may serve both).
        group_size: n, thoughts (Thinker generations) per problem (≥ 1); with K = 1 the joint
            episodes per problem.
        needs: counterfactual names (``"solo"``, ``"no_solver"``, ``"ratings"``) or a credit method
            (its ``.requires``).
        verifier: shared by every episode; default a :class:`MathVerifier` owned and closed here.
        solo_samples: m, Thinker-removed samples per problem (default ``group_size``).
        env_options: extra :class:`ThinkSolveEnv` arguments (``prompts``, ``max_thought_chars``, ...).
        answers_per_thought: K, Solver answers per thought (tree rollouts; default 1 = flat).
        sampling: a :class:`~.sampling.Sampling` (temperature, top_p, seed, budgets).
        rating_stop: when a rating may stop (see the module docstring); default
            ``needs.rating_stop`` if ``needs`` has one, else never early.
        raters: the policies that write the ratings, ``{agent: policy}`` (default ``policies``:
            each role rates with its own); a separate judge model, for instance.
        rater_prompts: the templates of the rating prompts (default the env's prompt set).
        roles: the chain of roles in order (default ``env_options["roles"]``, else the two
            roles); any other chain is collected by :func:`~.chain.collect_chain` (a policy per
            role; ``needs`` as a credit method gives its ``needs_for(roles)``).
        **keywords: the same settings as keywords instead (see the module docstring); not
            together with ``sampling``.

    Returns a :class:`Collected` list of groups, one per problem in order, with ``.budget``.
    """
    if isinstance(problems, str):
        problems = load_problems(problems)
    problems = list(problems)
    if not problems:
        raise ValueError("collect_groups: the problem list is empty")
    if isinstance(group_size, bool) or not isinstance(group_size, int) or group_size < 1:
        raise ValueError(f"collect_groups: group_size must be an integer >= 1, got {group_size!r}")
    K = answers_per_thought
    if isinstance(K, bool) or not isinstance(K, int) or K < 1:
        raise ValueError(f"collect_groups: answers_per_thought must be an integer >= 1, got {answers_per_thought!r}")
    options = dict(env_options or {})
    chain = tuple(options.get("roles") or ROLES) if roles is None else tuple(roles)
    if roles is not None and options.get("roles") is not None and tuple(options["roles"]) != chain:
        raise ValueError(f"collect_groups: roles={list(chain)} but env_options['roles']={list(options['roles'])}")
    if chain != ROLES:
        options["roles"] = chain
        fn = getattr(needs, "needs_for", None)
        need = normalize_needs(fn(chain) if callable(fn) and not isinstance(needs, (str, frozenset, set, list, tuple))
                               else needs)
    else:
        need = normalize_needs(needs)
    m = group_size if solo_samples is None else solo_samples
    if isinstance(m, bool) or not isinstance(m, int) or m < 0:
        raise ValueError(f"collect_groups: solo_samples must be an integer >= 0, got {solo_samples!r}")
    if chain != ROLES:
        if m < 1 and any(chain[0] not in C for C in chain_coalitions(chain, need)):
            raise ValueError(f"collect_groups: needs {sorted(need)} replays coalitions without the first role "
                             f"{chain[0]!r}, sampled solo_samples times per problem, but solo_samples=0")
    elif SOLO in need and m < 1:
        raise ValueError("collect_groups: needs includes 'solo' (the Thinker-removed counterfactual) but solo_samples=0")
    elif SOLO not in need:
        m = 0
    if not isinstance(policies, Mapping):
        raise TypeError(f"policies must map agent names to policies, got {type(policies).__name__}")
    for agent in (THINKER, SOLVER) if chain == ROLES else chain:
        if agent not in policies:
            what = "" if agent != SOLVER else " (also needed for the 'solo' counterfactual)" if SOLO in need else ""
            raise ValueError(f"collect_groups: no policy for {agent!r}{what}; policies has {sorted(policies)}")
        if not callable(getattr(policies[agent], "generate", None)):
            raise TypeError(f"policies[{agent!r}] has no generate() method")
    s = _sampling(sampling, keywords)
    raters = policies if raters is None else raters
    if RATINGS in need:
        for agent in (THINKER, SOLVER):
            if not callable(getattr(raters.get(agent), "generate", None)):
                raise TypeError(f"collect_groups: no rating policy with a generate() method for {agent!r}")
    if rating_stop is None:
        rating_stop = getattr(needs, "rating_stop", None)
    if rating_stop is not None and not callable(rating_stop):
        raise TypeError(f"collect_groups: rating_stop must be a callable text -> bool, got {type(rating_stop).__name__}")

    own = verifier is None
    inner = MathVerifier() if own else verifier
    counter = _CountingVerifier(inner)
    env = ThinkSolveEnv(problems, verifier=counter, **options)
    try:
        if chain != ROLES:
            return collect_chain(_Collection(env=env, problems=problems, policies=policies, n=group_size, m=m, K=K,
                                             need=need, sampling=s, counter=counter), chain)
        return _collect(_Collection(env=env, problems=problems, policies=policies, n=group_size, m=m, K=K, need=need,
                                    sampling=s, counter=counter, rating_stop=rating_stop, raters=raters,
                                    rater_prompts=rater_prompts))
    finally:
        env.close()
        if own:
            inner.close()


def _new_budget() -> dict:
    return {"generate_calls": {THINKER: 0, SOLVER: 0},
            **{p: {"generations": 0, "tokens": 0, "verifier_calls": 0} for p in PHASES}}


@dataclass
class _Collection:
    """One collection's settings and state: the env it drives, the policies, the sizes
    (n thoughts, m solo answers, K answers per thought per problem), what to collect, how to
    sample, the counting verifier and the budget so far."""

    env: ThinkSolveEnv
    problems: list[Problem]
    policies: Mapping[str, Any]
    n: int
    m: int
    K: int
    need: frozenset[str]
    sampling: Sampling
    counter: _CountingVerifier
    rating_stop: Callable[[str], bool] | None = None
    raters: Mapping[str, Any] | None = None
    rater_prompts: PromptSet | None = None
    budget: dict = field(default_factory=_new_budget)

    def generate(self, agent: str, phase: str, prompts: list, stop: Callable[[str], bool] | None = None,
                 policy: Any = None) -> list[Completion]:
        """One batched ``generate`` call of ``agent``'s policy (or ``policy``) with the phase's
        sampling settings (and ``stop``, when the policy supports it)."""
        policy = self.policies[agent] if policy is None else policy
        kwargs = self.sampling.generate_kwargs(phase)
        if stop is not None and getattr(policy, "supports_stop", False):
            kwargs["stop"] = stop
        out = list(policy.generate(prompts, **kwargs))
        if len(out) != len(prompts):
            raise RuntimeError(f"the {agent} policy returned {len(out)} completions for {len(prompts)} prompts")
        for c in out:
            if not isinstance(c, Completion):
                raise TypeError(f"the {agent} policy must return Completion objects, got {type(c).__name__}")
        self.budget["generate_calls"][agent] += 1
        return out

    def account(self, phase: str, completions: list[Completion]) -> None:
        self.budget[phase]["generations"] += len(completions)
        self.budget[phase]["tokens"] += sum(len(c.token_ids) for c in completions)

    def reset(self, i: int, remove: str | None = None) -> None:
        """Put the env at problem ``i`` with ``remove`` left out."""
        self.env.reset(options={"problem": i, "remove": remove})


def _collect(c: _Collection) -> Collected:
    env, problems, n, m, K, need, counter, budget = c.env, c.problems, c.n, c.m, c.K, c.need, c.counter, c.budget
    gen, account, reset = c.generate, c.account, c.reset
    P = len(problems)
    slots = [(i, j) for i in range(P) for j in range(n)]  # thoughts, problem-major

    # Phase 1: every Thinker prompt, one call.
    thinker_prompts = []
    for i in range(P):
        reset(i)
        msgs = env.infos[THINKER]["messages"]
        thinker_prompts.extend([msgs] * n)
    thoughts = gen(THINKER, "thinker", thinker_prompts)
    account("thinker", thoughts)

    # Phase 2: every Solver prompt (joint — K copies per thought — then solo), one call.
    solver_prompts, shown = [], []
    for (i, _), t in zip(slots, thoughts):
        reset(i)
        env.step(t.text)
        solver_prompts.extend([env.infos[SOLVER]["messages"]] * K)
        shown.append(env.thought_for_solver)
    solo_prompts = []
    for i in range(P):
        if m:
            reset(i, THINKER)
            solo_prompts.extend([env.infos[SOLVER]["messages"]] * m)
    answers = gen(SOLVER, "solver", solver_prompts + solo_prompts)
    joint_answers, solo_answers = answers[: len(solver_prompts)], answers[len(solver_prompts):]
    account("solver", joint_answers)
    account("solo", solo_answers)

    # Phase 3: finish every episode in the env (one verification each).
    episodes: list[list[Episode]] = [[] for _ in range(P)]
    before = counter.calls
    for q, a in enumerate(joint_answers):
        k = q // K  # the thought this answer responds to
        (i, j), t = slots[k], thoughts[k]
        reset(i)
        env.step(t.text)
        env.step(a.text)
        episodes[i].append(Episode(
            reward=float(env.rewards[SOLVER]),
            completions={THINKER: t, SOLVER: a},
            prompts={THINKER: thinker_prompts[k], SOLVER: solver_prompts[q]},
            actions=dict(env.outcome["actions"]),
            thought=shown[k],
            verification=dict(env.infos[SOLVER]["verification"]),
            thought_index=j,
        ))
    budget["solver"]["verifier_calls"] += counter.calls - before

    groups = Collected(EpisodeGroup(problem=problems[i], episodes=episodes[i]) for i in range(P))
    if m:
        before = counter.calls
        for i, g in enumerate(groups):
            g.solo_rewards, g.solo_prompt = [], solo_prompts[i * m]
            for a in solo_answers[i * m:(i + 1) * m]:
                reset(i, THINKER)
                env.step(a.text)
                g.solo_rewards.append(float(env.rewards[SOLVER]))
                g.solo_completions.append(a)
                g.solo_verifications.append(dict(env.infos[SOLVER]["verification"]))
        budget["solo"]["verifier_calls"] += counter.calls - before

    if NO_SOLVER in need:
        before = counter.calls
        for i, g in enumerate(groups):
            for siblings in g.thought_episodes:  # R_¬S depends on the thought only: one check each
                reset(i, SOLVER)
                env.step(siblings[0].completions[THINKER].text)
                reward, record = float(env.rewards[THINKER]), env.infos[THINKER]["verification"]
                for e in siblings:
                    e.no_solver_reward = reward
                    e.no_solver_verification = dict(record)
        budget["no_solver"]["verifier_calls"] += counter.calls - before

    # Phase 4: ratings, one call per rater role (one for both when they share a policy).
    if RATINGS in need:
        _rate(c, groups)
    groups.budget = budget
    return groups


def _prompt_key(messages: list) -> str:
    return json.dumps(messages, sort_keys=True, ensure_ascii=False)


def _rate(c: _Collection, groups: Collected) -> None:
    """Phase 4: every rater rates every joint episode (see the module docstring for what is
    merged); each episode gets its rater's text, completion and prompt."""
    flat = [(g, e) for g in groups for e in g.episodes]
    templates = c.rater_prompts or c.env.prompts
    prompts = [rating_prompts(g.problem.problem, e.thought, e.actions.get(SOLVER, ""), e.correct, templates)
               for g, e in flat]
    raters_of = c.raters or c.policies
    merge = c.sampling.resolved_rating_temperature == 0  # greedy: identical prompts, identical ratings
    raters = (THINKER, SOLVER)
    asked, which = {}, {}  # rater -> prompts generated; rater -> each episode's index in them
    for rater in raters:
        if not merge:
            asked[rater], which[rater] = [p[rater] for p in prompts], list(range(len(prompts)))
            continue
        index: dict[str, int] = {}
        which[rater] = [index.setdefault(_prompt_key(p[rater]), len(index)) for p in prompts]
        asked[rater] = [None] * len(index)
        for p, k in zip(prompts, which[rater]):
            asked[rater][k] = p[rater]
    phase = {THINKER: "rating_thinker", SOLVER: "rating_solver"}
    if raters_of[THINKER] is raters_of[SOLVER]:
        out = c.generate(THINKER, phase[THINKER], asked[THINKER] + asked[SOLVER], stop=c.rating_stop,
                         policy=raters_of[THINKER])
        got = {THINKER: out[: len(asked[THINKER])], SOLVER: out[len(asked[THINKER]):]}
    else:
        got = {rater: c.generate(rater, phase[rater], asked[rater], stop=c.rating_stop, policy=raters_of[rater])
               for rater in raters}
    for rater in raters:
        c.account(phase[rater], got[rater])
        for (_, e), p, k in zip(flat, prompts, which[rater]):
            completion = got[rater][k]
            if e.ratings is None:
                e.ratings = {}
            e.ratings[rater] = completion.text
            e.rating_completions[rater] = completion
            e.rating_prompts[rater] = p[rater]
