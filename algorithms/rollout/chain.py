"""Batched collection for a chain of N roles (docs/method.md#teams-of-more-than-two-roles).

:func:`~algorithms.rollout.collect_groups` comes here when the team is not the two default roles
(``roles=`` or ``env_options["roles"]``). The env (:class:`~thinksolve_env.ThinkSolveEnv` with
``roles``) stays the single definition of the game: prompts, what each role is shown, removal,
verification of the last present role's text. It is driven as for two roles: an episode is
resumed by resetting to its problem and removal and re-stepping its texts.

Joint episodes: ``group_size`` n texts of the first role per problem; with
``answers_per_thought`` K every text of a role before the last gets K continuations by the next
role (a tree, K^(N−1) episodes below each first-role text; K = 1: n flat episodes). Each
episode's ``path`` numbers its node at every position; ``thought_index`` is ``path[0]``.

Counterfactual replays (``needs``, see :func:`~algorithms.rollout.needs.chain_coalitions`): a
coalition C holding the first role is replayed once on each distinct prefix — the texts of the
roles before the first position missing from C are kept, the roles of C after it are sampled
afresh (none: the last kept text is verified) — and every episode below that prefix carries the
result in ``Episode.coalition_rewards[C]``. A coalition without the first role is sampled m times
per problem (``solo_samples``, default n): ``EpisodeGroup.coalition_rewards[C]``. Two-role names
are filled too where they apply (``solo_rewards`` for N∖{first}, ``no_solver_reward`` for
N∖{last}).

One batched ``generate`` call per role: at position p the call holds the joint continuations of
every problem and every replay whose next present role is p (the removal replays ride in the
calls of the roles they need). The budget counts, per role (``<role>``: its joint texts) and per
coalition (:func:`~algorithms.rollout.needs.coalition_label`, e.g. ``without:relay_0``), the
generations, tokens and verifier calls; a coalition's entry also says its generations by role.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from agents import Completion

from .episodes import Collected, Episode, EpisodeGroup
from .needs import RATINGS, chain_coalitions, coalition_label

__all__ = ["collect_chain"]


@dataclass
class _Node:
    """A joint text of the role at ``depth`` (0-based position), below ``parent``."""

    problem: int
    path: tuple[int, ...]
    texts: dict[str, Completion]
    prompts: dict[str, Any]
    shown: dict[str, str]


@dataclass
class _Replay:
    """One counterfactual run of coalition ``coalition`` on problem ``problem``: ``texts`` the
    kept prefix and what it has generated so far; ``key`` where its result goes."""

    problem: int
    coalition: frozenset
    texts: dict[str, Completion]
    key: Any
    generated: dict[str, int] = field(default_factory=dict)


def _next_present(roles: tuple[str, ...], coalition: frozenset, after: int) -> int | None:
    for q in range(after + 1, len(roles)):
        if roles[q] in coalition:
            return q
    return None


def collect_chain(c: Any, roles: tuple[str, ...]) -> Collected:
    """Collect the joint episodes and counterfactual replays of ``c`` (the collection's settings
    and state, as ``collect_groups`` builds them: env, problems, policies, n, m, K, need,
    sampling, counting verifier) for the chain ``roles`` (see the module docstring)."""
    env, problems, n, m, K = c.env, c.problems, c.n, c.m, c.K
    if RATINGS in c.need:
        raise ValueError(f"collect_groups: ratings (SEPO) are defined for two roles, not for the chain {list(roles)}")
    N = len(roles)
    everyone = frozenset(roles)
    wanted = chain_coalitions(roles, c.need)
    budget: dict[str, Any] = {"generate_calls": dict.fromkeys(roles, 0)}
    for r in roles:
        budget[r] = {"generations": 0, "tokens": 0, "verifier_calls": 0}
    labels = {C: coalition_label(roles, C) for C in wanted}
    for C in wanted:
        budget[labels[C]] = {"generations": 0, "tokens": 0, "verifier_calls": 0, "by_role": {}}

    def prompt(i: int, removed: frozenset, texts: dict[str, Completion]) -> tuple[Any, str]:
        """Reset to problem i without ``removed``, step the present roles' texts; the chat prompt
        of the role whose turn it is and what it was shown."""
        env.reset(options={"problem": i, "remove": sorted(removed)})
        for r in roles:
            if r in texts and r not in removed:
                env.step(texts[r].text)
        agent = env.agent_selection
        return env.infos[agent]["messages"], env.shown.get(agent, "")

    def finish(i: int, removed: frozenset, texts: dict[str, Completion]) -> tuple[float, dict, dict]:
        env.reset(options={"problem": i, "remove": sorted(removed)})
        if not env.agents:  # nobody present
            return float(env.outcome["reward"]), dict(env.outcome["verification"]), {}
        for r in roles:
            if r not in removed:
                env.step(texts[r].text)
        return float(env.outcome["reward"]), dict(env.outcome["verification"]), dict(env.outcome.get("actions", {}))

    def generate(p: int, prompts: list) -> list[Completion]:
        role = roles[p]
        policy = c.policies[role]
        out = list(policy.generate(prompts, **c.sampling.chain_kwargs(roles, p)))
        if len(out) != len(prompts):
            raise RuntimeError(f"the {role} policy returned {len(out)} completions for {len(prompts)} prompts")
        for x in out:
            if not isinstance(x, Completion):
                raise TypeError(f"the {role} policy must return Completion objects, got {type(x).__name__}")
        budget["generate_calls"][role] += 1
        return out

    # replays of coalitions without the first role: m per problem, from an empty prefix
    replays: list[_Replay] = []
    for C in wanted:
        if roles[0] not in C:
            replays.extend(_Replay(i, C, {}, ("problem", i, C)) for i in range(len(problems)) for _ in range(m))
    pending_at = {id(r): _next_present(roles, r.coalition, -1) for r in replays}

    nodes: list[_Node] = [_Node(i, (), {}, {}, {}) for i in range(len(problems))]  # the roots: nothing yet
    for p in range(N):
        role = roles[p]
        children: list[tuple[_Node, int]] = []
        for parent in nodes:
            children.extend((parent, j) for j in range(n if p == 0 else K))
        joint_prompts, joint_shown = [], []
        cache: dict[int, tuple[Any, str]] = {}
        for parent, _ in children:
            if id(parent) not in cache:
                cache[id(parent)] = prompt(parent.problem, frozenset(), parent.texts)
            msgs, shown = cache[id(parent)]
            joint_prompts.append(msgs)
            joint_shown.append(shown)
        riding = [r for r in replays if pending_at[id(r)] == p]
        replay_prompts = [prompt(r.problem, everyone - r.coalition, r.texts)[0] for r in riding]
        out = generate(p, joint_prompts + replay_prompts)
        joint_out, replay_out = out[:len(joint_prompts)], out[len(joint_prompts):]
        budget[role]["generations"] += len(joint_out)
        budget[role]["tokens"] += sum(len(x.token_ids) for x in joint_out)
        for r, x in zip(riding, replay_out):
            r.texts = {**r.texts, role: x}
            b = budget[labels[r.coalition]]
            b["generations"] += 1
            b["tokens"] += len(x.token_ids)
            b["by_role"][role] = b["by_role"].get(role, 0) + 1
            pending_at[id(r)] = _next_present(roles, r.coalition, p)
        nodes = [_Node(parent.problem, parent.path + (j,), {**parent.texts, role: x},
                       {**parent.prompts, role: msgs}, {**parent.shown, role: shown})
                 for (parent, j), x, msgs, shown in zip(children, joint_out, joint_prompts, joint_shown)]
        if p < N - 1:
            # coalitions whose first missing position is p + 1 keep these prefixes: one replay each
            for C in wanted:
                if roles[0] in C and _first_missing(roles, C) == p + 1:
                    for node in nodes:
                        r = _Replay(node.problem, C, dict(node.texts), ("prefix", node.problem, node.path, C))
                        replays.append(r)
                        pending_at[id(r)] = _next_present(roles, C, p)

    # every replay is complete: verify each (its last present role's text)
    results: dict[Any, list[float]] = {}
    for r in replays:
        before = c.counter.calls
        reward, _, _ = finish(r.problem, everyone - r.coalition, r.texts)
        budget[labels[r.coalition]]["verifier_calls"] += c.counter.calls - before
        results.setdefault(r.key, []).append(reward)

    groups_eps: list[list[Episode]] = [[] for _ in problems]
    last = roles[-1]
    for leaf in nodes:
        before = c.counter.calls
        reward, verification, actions = finish(leaf.problem, frozenset(), leaf.texts)
        budget[last]["verifier_calls"] += c.counter.calls - before
        own = {}
        for C in wanted:
            if roles[0] in C:
                j = _first_missing(roles, C)
                own[C] = results[("prefix", leaf.problem, leaf.path[:j], C)][0]
        groups_eps[leaf.problem].append(Episode(
            reward=reward,
            completions=dict(leaf.texts),
            prompts=dict(leaf.prompts),
            actions=actions or {r: leaf.texts[r].text for r in roles},
            thought=leaf.shown.get(last, ""),
            verification=verification,
            thought_index=leaf.path[0],
            path=leaf.path[:-1],
            coalition_rewards=own or None,
            shown=dict(leaf.shown),
        ))
    groups = Collected()
    for i, problem in enumerate(problems):
        shared = {C: results[("problem", i, C)] for C in wanted if roles[0] not in C}
        g = EpisodeGroup(problem=problem, episodes=groups_eps[i], roles=roles, coalition_rewards=shared or None)
        solo = everyone - {roles[0]}
        if solo in shared:
            g.solo_rewards = list(shared[solo])
        alone = everyone - {last}
        for e in g.episodes:
            if e.coalition_rewards and alone in e.coalition_rewards:
                e.no_solver_reward = e.coalition_rewards[alone]
        groups.append(g)
    groups.budget = budget
    return groups


def _first_missing(roles: tuple[str, ...], coalition: frozenset) -> int:
    return next(q for q, r in enumerate(roles) if r not in coalition)
