"""Tree-structured rollouts and per-thought credit (docs/method.md#tree-credit) on the real tiny transformer
and on hand-built groups: one Thinker and one Solver ``generate`` call per step, thought-major
episodes, exact budgets, K = 1 equal to the flat algorithm, shared prefills, the Thinker's loss
counting each thought once, and hand-computed values for ``tree``, ``ccpo`` value,
``difference`` and ``shapley``."""

import numpy as np
import pytest
import torch

from agents import TransformersPolicy
from agents.models import load_model
from algorithms import credit, estimators
from algorithms.config import apply_overrides, preset
from algorithms.rollout import EpisodeGroup, collect_groups
from algorithms.train import Trainer
from thinksolve_env import MathVerifier, load_problems
from thinksolve_env.env import ThinkSolveEnv

SOLO_NEEDS = {"solo", "no_solver", "ratings"}


@pytest.fixture(scope="module")
def policy():
    torch.set_num_threads(1)
    model, tok = load_model("tiny", seed=0)
    return TransformersPolicy(model, tok, seed=0)


@pytest.fixture(scope="module")
def problems():
    return load_problems("arith:n=20,difficulty=1,split=train")[:3]


class Counting:
    """A real policy that records the size of every generate call."""

    def __init__(self, inner):
        self.inner, self.calls = inner, []

    def generate(self, prompts, **kw):
        self.calls.append(len(prompts))
        return self.inner.generate(prompts, **kw)


def _collect(policy, problems, K, n=3, m=2, needs=SOLO_NEEDS, **kw):
    with MathVerifier(workers=0) as v:
        return collect_groups(problems, {"thinker_0": policy, "solver_0": policy}, group_size=n, answers_per_thought=K,
                              needs=needs, verifier=v, solo_samples=m, seed=11, thinker_max_new_tokens=12,
                              solver_max_new_tokens=12, rating_max_new_tokens=6, **kw)


def test_tree_collection_structure_and_budget(policy, problems):
    thinker, solver = Counting(policy), Counting(policy)
    n, K, m, P = 3, 4, 2, len(problems)
    with MathVerifier(workers=0) as v:
        groups = collect_groups(problems, {"thinker_0": thinker, "solver_0": solver}, group_size=n,
                                answers_per_thought=K, needs={"solo", "no_solver"}, verifier=v, solo_samples=m, seed=3,
                                thinker_max_new_tokens=12, solver_max_new_tokens=12)
    # one Thinker call with n prompts per problem; one Solver call with n*K joint + m solo prompts per problem
    assert thinker.calls == [P * n]
    assert solver.calls == [P * (n * K + m)]
    b = groups.budget
    assert b["generate_calls"] == {"thinker_0": 1, "solver_0": 1}
    assert b["thinker"]["generations"] == P * n
    assert b["solver"]["generations"] == P * n * K and b["solver"]["verifier_calls"] == P * n * K
    assert b["solo"]["generations"] == P * m and b["solo"]["verifier_calls"] == P * m
    assert b["no_solver"]["verifier_calls"] == P * n  # one check per thought, not per answer
    assert b["thinker"]["tokens"] == sum(len(t.token_ids) for g in groups for t in g.thoughts)
    assert b["solver"]["tokens"] == sum(len(e.completions["solver_0"].token_ids) for g in groups for e in g.episodes)
    for g in groups:
        assert len(g.episodes) == n * K and g.answers_per_thought == K and len(g.thoughts) == n
        assert [e.thought_index for e in g.episodes] == [j for j in range(n) for _ in range(K)]
        for j, siblings in enumerate(g.thought_episodes):
            assert all(e.completions["thinker_0"] is g.thoughts[j] for e in siblings)
            assert all(e.prompts["solver_0"] == siblings[0].prompts["solver_0"] for e in siblings)
            assert len({e.no_solver_reward for e in siblings}) == 1
            assert len({tuple(e.completions["solver_0"].token_ids) for e in siblings}) > 1  # K samples, not one
        np.testing.assert_allclose(g.thought_values, [np.mean([e.reward for e in s]) for s in g.thought_episodes])


def test_tree_episodes_replay_in_the_env(policy, problems):
    """Each episode's reward is what the env gives for its thought and answer."""
    groups = _collect(policy, problems, K=2, needs=set())
    env = ThinkSolveEnv(problems, verifier=MathVerifier(workers=0))
    for i, g in enumerate(groups):
        for e in g.episodes:
            env.reset(options={"problem": i})
            env.step(e.completions["thinker_0"].text)
            env.step(e.completions["solver_0"].text)
            assert env.rewards["solver_0"] == e.reward
    env.close()


def test_k1_is_the_flat_algorithm(policy, problems):
    """K = 1: n Thinker prompts per problem (seed s), then the joint and solo Solver prompts in
    one call (seed s+1), exactly as flat collection defines them."""
    n, m = 3, 2
    groups = _collect(policy, problems, K=1, n=n, m=m, needs={"solo"})
    env = ThinkSolveEnv(problems, verifier=MathVerifier(workers=0))
    tp = []
    for i in range(len(problems)):
        env.reset(options={"problem": i})
        tp += [env.infos["thinker_0"]["messages"]] * n
    thoughts = policy.generate(tp, max_new_tokens=12, seed=11)
    sp = []
    for k, t in enumerate(thoughts):
        env.reset(options={"problem": k // n})
        env.step(t.text)
        sp.append(env.infos["solver_0"]["messages"])
    for i in range(len(problems)):
        env.reset(options={"problem": i, "remove": "thinker_0"})
        sp += [env.infos["solver_0"]["messages"]] * m
    answers = policy.generate(sp, max_new_tokens=12, seed=12)
    env.close()
    eps = [e for g in groups for e in g.episodes]
    assert [e.completions["thinker_0"].token_ids for e in eps] == [t.token_ids for t in thoughts]
    assert [e.completions["solver_0"].token_ids for e in eps] == [a.token_ids for a in answers[: len(eps)]]
    assert [c.token_ids for g in groups for c in g.solo_completions] == [a.token_ids for a in answers[len(eps):]]
    assert [e.thought_index for g in groups for e in g.episodes] == [j for _ in problems for j in range(n)]


def test_shared_prefill_same_samples_fewer_rows(policy):
    model, tok = policy.model, policy.tokenizer
    shared = TransformersPolicy(model, tok, share_prefill=True)
    plain = TransformersPolicy(model, tok, share_prefill=False)
    prompts = [[{"role": "user", "content": f"{i} plus {i}?"}] for i in range(3) for _ in range(4)]
    a = shared.generate(prompts, max_new_tokens=10, seed=5)
    b = plain.generate(prompts, max_new_tokens=10, seed=5)
    assert [c.token_ids for c in a] == [c.token_ids for c in b]
    np.testing.assert_allclose([x for c in a for x in c.logprobs], [x for c in b for x in c.logprobs], atol=1e-5)
    assert shared.prefill_rows == 3 and plain.prefill_rows == 12
    # the sampling-time log-probs are the trainer's recomputed ones
    re = shared.logprobs(prompts, a)
    for c, lp in zip(a, re):
        np.testing.assert_allclose(c.logprobs, lp.detach().numpy(), atol=1e-4)


def test_collect_rejects_bad_answers_per_thought(policy, problems):
    for bad in (0, -1, 1.5, True):
        with pytest.raises(ValueError, match="answers_per_thought"):
            collect_groups(problems, {"thinker_0": policy, "solver_0": policy}, group_size=2, needs=(),
                           answers_per_thought=bad)


# --------------------------------------------------------------------------- credit on hand-built groups


def _groups():
    # problem 1: thoughts A (answers +1, +1, -1), B (-1, -1, -1); solo -1, +1 -> b = 0
    # problem 2: thoughts C (+1, +1, +1), D (+1, -1, -1); solo -1, -1 -> b = -1
    g1 = EpisodeGroup.from_rewards([1, 1, -1, -1, -1, -1], solo=[-1, 1], no_solver=[1, 1, 1, -1, -1, -1],
                                   answers_per_thought=3)
    g2 = EpisodeGroup.from_rewards([1, 1, 1, 1, -1, -1], solo=[-1, -1], no_solver=[-1, -1, -1, -1, -1, -1],
                                   answers_per_thought=3)
    return [g1, g2]


Q = np.array([1 / 3] * 3 + [-1] * 3 + [1] * 3 + [-1 / 3] * 3)
B = np.array([0.0] * 6 + [-1.0] * 6)
R = np.array([1, 1, -1, -1, -1, -1, 1, 1, 1, 1, -1, -1], dtype=float)
RS = np.array([1, 1, 1, -1, -1, -1] + [-1] * 6, dtype=float)


def test_thought_values_and_units():
    gs = _groups()
    np.testing.assert_array_equal(credit.thought_ids(gs), [0, 0, 0, 1, 1, 1, 2, 2, 2, 3, 3, 3])
    np.testing.assert_allclose(credit.thought_values(gs), Q)
    u = credit.role_units(gs, R, "thinker_0")
    np.testing.assert_allclose(u.rewards, [1 / 3, -1, 1, -1 / 3])
    np.testing.assert_array_equal(u.index, [0, 0, 1, 1])
    np.testing.assert_array_equal(u.episodes, [0, 3, 6, 9])
    s = credit.role_units(gs, R, "solver_0", "thought")
    np.testing.assert_array_equal(s.index, credit.thought_ids(gs))
    np.testing.assert_array_equal(credit.role_units(gs, R, "solver_0").index, [0] * 6 + [1] * 6)
    with pytest.raises(ValueError, match="one reward per joint episode"):
        credit.role_units(gs, R[:5], "solver_0")
    with pytest.raises(ValueError, match="grouping"):
        credit.role_units(gs, R, "solver_0", "episode")


def test_flat_units_are_the_episodes():
    g = EpisodeGroup.from_rewards([1, -1, 1, 1], solo=[1])
    u = credit.role_units([g], [0.5, 0.1, 0.2, 0.3], "thinker_0")
    np.testing.assert_array_equal(u.rewards, [0.5, 0.1, 0.2, 0.3])
    np.testing.assert_array_equal(u.episodes, [0, 1, 2, 3])


def test_tree_method_by_hand():
    gs = _groups()
    m = credit.get("tree")
    r = m(gs)
    np.testing.assert_allclose(r["thinker_0"], Q)
    np.testing.assert_allclose(r["solver_0"], R)
    assert credit.resolve_grouping(m, "solver_0") == "thought" and credit.resolve_grouping(m, "thinker_0") == "problem"
    # Dr. GRPO on the units: Thinker Q_j - mean of its problem's Q; Solver R - Q (its siblings' mean)
    t = credit.role_units(gs, r["thinker_0"], "thinker_0")
    np.testing.assert_allclose(estimators.get("dr_grpo")(t.rewards, t.index).numpy(), [2 / 3, -2 / 3, 2 / 3, -2 / 3],
                               atol=1e-6)
    s = credit.role_units(gs, r["solver_0"], "solver_0", "thought")
    np.testing.assert_allclose(estimators.get("dr_grpo")(s.rewards, s.index).numpy(), R - Q, atol=1e-6)


def test_ccpo_value_difference_shapley_by_hand():
    gs, lam = _groups(), 0.2
    r = credit.get("ccpo", variant="value", lam=lam)(gs)
    np.testing.assert_allclose(r["thinker_0"], Q + lam * (Q - B) / 2)
    np.testing.assert_allclose(r["solver_0"], R)
    d = credit.get("difference")(gs)
    np.testing.assert_allclose(d["thinker_0"], Q - B)
    np.testing.assert_allclose(d["solver_0"], R - RS)
    s = credit.get("shapley")(gs)
    np.testing.assert_allclose(s["thinker_0"], 0.5 * ((RS + 1) + (Q - B)))
    np.testing.assert_allclose(s["solver_0"], 0.5 * ((B + 1) + (R - RS)))
    # efficiency on average over a thought's answers
    per_thought = lambda x: x.reshape(4, 3).mean(axis=1)  # noqa: E731
    np.testing.assert_allclose(per_thought(s["thinker_0"] + s["solver_0"]), per_thought(Q) + 1)


def test_value_variant_is_margin_when_k_is_one():
    g = EpisodeGroup.from_rewards([1, -1, 1, -1], solo=[1, -1, -1], no_solver=[-1] * 4)
    a = credit.get("ccpo", variant="value")([g])["thinker_0"]
    b = credit.get("ccpo", variant="margin")([g])["thinker_0"]
    np.testing.assert_allclose(a, b)
    d = credit.get("difference")([g])["thinker_0"]
    np.testing.assert_allclose(d, np.array([1, -1, 1, -1]) - (-1 / 3))


def test_tree_thinker_ranks_thoughts_where_event_cannot():
    """docs/method.md#ccpo vs #tree-credit: in a flat group, ccpo-event's Thinker advantage takes one value per outcome (two
    values: the thoughts are ranked by their single answer's luck); the tree's per-thought value
    separates a thought right 2 of 2 times from one right 1 of 2 times."""
    flat = EpisodeGroup.from_rewards([1, 1, -1, 1, -1, -1, -1, 1], solo=[-1, 1])
    r = credit.get("ccpo", variant="event")([flat])["thinker_0"]
    u = credit.role_units([flat], r, "thinker_0")
    assert len(set(np.round(estimators.get("grpo")(u.rewards, u.index).numpy(), 6))) == 2
    tree = EpisodeGroup.from_rewards([1, 1, 1, -1, 1, -1, -1, -1], solo=[-1, 1], answers_per_thought=2)
    t = credit.get("tree")([tree])
    u = credit.role_units([tree], t["thinker_0"], "thinker_0")
    np.testing.assert_allclose(u.rewards, [1, 0, 0, -1])
    a = estimators.get("grpo")(u.rewards, u.index).numpy()
    assert a[0] > a[1] == a[2] > a[3]


def test_registered_method_with_thought_grouping():
    name = "test_tree_solver_bonus"
    try:
        @credit.register(name, requires={"solo"}, grouping={"solver_0": "thought"}, replace=True)
        def fn(groups, bonus=0.5):
            q = credit.thought_values(groups)
            return {"thinker_0": q - credit.solo_baselines(groups), "solver_0": credit.joint_rewards(groups) + bonus}

        m = credit.get(name, bonus=1.0)
        assert m.grouping == {"solver_0": "thought"}
        r = m(_groups())
        np.testing.assert_allclose(r["thinker_0"], Q - B)
        assert credit.resolve_grouping(m, "solver_0") == "thought"
        with pytest.raises(ValueError, match="only the Solver"):
            credit.register(name + "_bad", grouping={"thinker_0": "thought"})(fn)
        with pytest.raises(ValueError, match="grouping"):
            credit.register(name + "_bad", grouping={"solver_0": "answer"})(fn)
    finally:
        credit.unregister(name)


def test_from_rewards_checks_k():
    with pytest.raises(ValueError, match="multiple"):
        EpisodeGroup.from_rewards([1, 1, 1], answers_per_thought=2)
    with pytest.raises(ValueError, match="answers_per_thought"):
        EpisodeGroup.from_rewards([1, 1], answers_per_thought=0)


# --------------------------------------------------------------------------- the trainer


class RecordingTrainer(Trainer):
    """The real trainer, recording what each role's update trains on."""

    seen: list

    def update(self, role, prompts, completions, advantages):
        self.seen.append((role, list(completions), advantages.clone()))
        return super().update(role, prompts, completions, advantages)


def test_trainer_counts_each_thought_once(tmp_path):
    cfg = apply_overrides(preset("tiny-arith"), [
        "warm_start.enabled=false", "train_data=arith:n=50,difficulty=1", "rollout.problems_per_step=2",
        "rollout.group_size=3", "rollout.answers_per_thought=2", "rollout.solo_samples=1",
        "rollout.thinker_max_new_tokens=6", "rollout.solver_max_new_tokens=6", "credit.name=tree",
        "optim.estimator=dr_grpo", "schedule.mode=simultaneous", "steps=1", "tensorboard=false",
        f"out={tmp_path / 'run'}",
    ])
    RecordingTrainer.seen = []
    with RecordingTrainer(cfg, log=None) as tr:
        row = tr.step()
        groups = tr.last_groups
    seen = {role: (c, a) for role, c, a in RecordingTrainer.seen}
    thoughts = [t for g in groups for t in g.thoughts]
    comps, adv = seen["thinker_0"]
    assert len(comps) == 2 * 3 and all(a is b for a, b in zip(comps, thoughts))  # each thought once
    q = np.array([v for g in groups for v in g.thought_values])
    expect = (q.reshape(2, 3) - q.reshape(2, 3).mean(axis=1, keepdims=True)).reshape(-1)
    np.testing.assert_allclose(adv.numpy(), expect, atol=1e-6)
    comps, adv = seen["solver_0"]
    assert len(comps) == 2 * 3 * 2
    R = np.array([e.reward for g in groups for e in g.episodes])
    np.testing.assert_allclose(adv.numpy(), R - np.repeat(q, 2), atol=1e-6)
    assert row["generations"]["thinker"] == 6 and row["generations"]["solver"] == 12
