"""The credit-fidelity lab (algorithms.lab, benchmarks/credit_fidelity.py): games as credit
batches (credit.Outcomes, EpisodeGroups on demand), the public capabilities its speed rests on
(CreditMethod.per_group, the estimators' group_local), scores against exact values, learning runs."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from algorithms import credit, estimators
from algorithms.credit import resolve_grouping, role_units
from algorithms.lab import (
    FLAT,
    TREE,
    Collection,
    MethodSpec,
    apply_method,
    build_groups,
    fidelity_scores,
    game_outcomes,
    learning_runs,
    mean_ci,
    pairwise_sign_accuracy,
    role_advantages,
    sign_agreement,
    spearman_rows,
    wilson_ci,
)
from thinksolve_env.games import GAMES, exact_values, make_game, sample, sample_ratings

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

BUILTIN_SPECS = [MethodSpec("shared", "shared"), *(MethodSpec(f"ccpo-{v}", "ccpo", {"variant": v})
                                                   for v in ("event", "margin", "normalized", "value")),
                 MethodSpec("sepo", "sepo"), MethodSpec("difference", "difference"), MethodSpec("shapley", "shapley"),
                 MethodSpec("tree", "tree")]
#: every built-in with each of its shapes of behaviour (ccpo's variants, SEPO's two centrings)
ALL_BUILTINS = BUILTIN_SPECS + [MethodSpec("sepo-none", "sepo", {"center": "none"})]


pytestmark = pytest.mark.usefixtures("credit_registry_restored")


def _batch(game="helpful-harmful", groups=6, n=3, K=2, m=3, seed=0, ratings=True):
    g = make_game(game)
    rng = np.random.default_rng(seed)
    piT = np.full((g.n_thinker_obs, g.n_thoughts), 1 / g.n_thoughts)
    piS = np.full((g.n_solver_obs, g.n_answers), 1 / g.n_answers)
    b = sample(g, piT, piS, rng, groups=groups, thoughts=n, answers_per_thought=K, solo_samples=m)
    r = None
    if ratings:
        ex = exact_values(g, piT, piS)
        A_T = ex.A_T[b.x[:, None], b.t]
        A_S = ex.A_S[b.x[:, None, None], b.t[:, :, None], b.a]
        r = sample_ratings(np.broadcast_to(A_T[:, :, None], A_S.shape), A_S, b.reward, 0.7, rng)
    return g, b, r


def test_groups_from_a_game_are_collect_groups_shaped():
    g, b, r = _batch()
    groups = build_groups(b, ratings=r)
    assert len(groups) == 6
    G0 = groups[0]
    assert len(G0.episodes) == 6 and G0.answers_per_thought == 2 and len(G0.thoughts) == 3
    assert [e.thought_index for e in G0.episodes] == [0, 0, 1, 1, 2, 2]
    np.testing.assert_array_equal(credit.joint_rewards(groups), b.reward.reshape(-1))
    np.testing.assert_array_equal(credit.no_solver_rewards(groups), np.repeat(b.no_solver_reward, 2, axis=1).reshape(-1))
    np.testing.assert_allclose(credit.solo_baselines(groups), np.repeat(b.solo_reward.mean(1), 6))
    np.testing.assert_allclose(G0.thought_values, b.reward[0].mean(axis=1))
    assert set(G0.episodes[0].ratings) == {"thinker_0", "solver_0"}
    assert isinstance(G0.episodes[0].ratings["thinker_0"], tuple)


@pytest.mark.parametrize("K", [1, 3])
def test_a_game_batch_gives_the_plain_groups_rewards_and_units_for_every_builtin(K):
    g, b, r = _batch(groups=8, n=4, K=K, m=3, seed=K)
    batch = game_outcomes(b, ratings=r)
    plain = build_groups(b, ratings=r)
    assert isinstance(batch, credit.Outcomes) and len(batch) == 8 and batch.size == 8 * 4 * K
    for spec in ALL_BUILTINS:
        ref = apply_method(spec, plain, 2)
        fast = apply_method(spec, batch, 2)
        method = spec.make()
        for role in ref:
            np.testing.assert_array_equal(fast[role], ref[role], err_msg=f"{spec.label} {role}")
            u_ref = role_units(plain, ref[role], role, resolve_grouping(method, role))
            u_fast = role_units(batch, fast[role], role, resolve_grouping(method, role))
            for a, c in zip(u_ref, u_fast):
                np.testing.assert_array_equal(a, c)
    # the outcomes read from the groups are the game's arrays
    of = credit.Outcomes.of(plain)
    for key in ("joint", "group", "thought", "solo_baseline", "paired_solo", "no_solver", "sizes"):
        np.testing.assert_array_equal(getattr(of, key), getattr(batch, key), err_msg=key)
    # a slice is the batch of those groups, renumbered
    part = batch[2:5]
    np.testing.assert_array_equal(credit.thought_ids(part), credit.thought_ids(plain[2:5]))
    np.testing.assert_array_equal(credit.group_index(part), credit.group_index(plain[2:5]))
    assert [e.reward for e in part[0].episodes] == [e.reward for e in plain[2].episodes]


def test_methods_that_read_only_the_helpers_never_build_an_episode():
    """An Outcomes made from arrays alone (no groups at all) serves every built-in but SEPO;
    iterating it, which SEPO's ratings need, is refused with a clear error."""
    g, b, _ = _batch(groups=4, n=3, K=2, m=2, seed=4, ratings=False)
    full = game_outcomes(b)
    bare = credit.Outcomes(full.joint, full.sizes, full.thought, solo_baseline=full.solo_baseline,
                           paired_solo=full.paired_solo, no_solver=full.no_solver)
    for spec in BUILTIN_SPECS:
        if spec.name == "sepo":
            continue
        ref = spec.make()(full)
        out = spec.make()(bare)
        for role in ref:
            np.testing.assert_array_equal(out[role], ref[role], err_msg=spec.label)
    with pytest.raises(TypeError, match="no groups to iterate"):
        credit.get("sepo")(bare)
    with pytest.raises(credit.MissingCounterfactualError, match="'solo'"):
        credit.get("ccpo")(credit.Outcomes(full.joint, full.sizes, full.thought))
    with pytest.raises(ValueError, match="order of first appearance"):
        credit.Outcomes([1.0, -1.0, 1.0], [1, 2], [0, 0, 1])  # thought 0 in two groups


def _two_batches(seed=0, K=2):
    """Two batches of real groups (as collect_groups makes them), with every counterfactual."""
    g, b, r = _batch(groups=6, n=3, K=K, m=3, seed=seed)
    groups = build_groups(b, ratings=r)
    return groups[:3], groups[3:]


@pytest.mark.parametrize("K", [1, 2])
def test_per_group_methods_give_the_same_rewards_on_concatenated_batches(K):
    """``per_group`` is the public promise the lab's single call rests on: for every built-in that
    makes it, one call on two batches' groups equals the two calls batch by batch, bit for bit."""
    first, second = _two_batches(seed=K, K=K)
    for spec in ALL_BUILTINS:
        method = spec.make()
        assert method.per_group == (spec.params.get("variant") != "normalized"), spec.label
        if not method.per_group:
            continue
        together = spec.make()(first + second)
        apart = [spec.make()(first), spec.make()(second)]
        for role in together:
            np.testing.assert_array_equal(together[role], np.concatenate([a[role] for a in apart]), err_msg=spec.label)
    # ccpo normalized carries its moving averages from batch to batch: one call over both differs
    normalized = {"variant": "normalized", "warmup": 0}
    one = credit.get("ccpo", **normalized)
    one(first)
    assert not np.array_equal(one(second)["thinker_0"], credit.get("ccpo", **normalized)(second)["thinker_0"])


def test_per_group_is_false_unless_a_class_states_it():
    @credit.register("plain_fn", replace=True)
    def plain_fn(groups):
        R = credit.joint_rewards(groups)
        return {"thinker_0": R, "solver_0": R}

    assert credit.get("plain_fn").per_group is False  # a registered function: the safe value

    class Counting(credit.get("tree").__class__):  # a subclass of a built-in that adds state
        def compute(self, groups):
            self.calls = getattr(self, "calls", 0) + 1
            return super().compute(groups)

    class Stated(Counting):
        per_group = True

    assert credit.get("tree").per_group is True
    assert Counting().per_group is False and Stated().per_group is True
    assert credit.CreditMethod.per_group is False


ESTIMATOR_CASES = [(name, {}) for name in estimators.available()] + [("grpo", {"scale": s}) for s in ("group", "batch", "none")]


@pytest.mark.parametrize("name,params", ESTIMATOR_CASES)
def test_group_local_estimators_give_the_same_advantages_on_concatenated_batches(name, params):
    """``group_local`` is the public promise the lab's single estimator call rests on."""
    fn = estimators.get(name)
    flag = fn.group_local
    local = flag(**params) if callable(flag) else flag
    assert local == (name in ("grpo", "dr_grpo", "rloo") and params.get("scale", "group") != "batch"), (name, params)
    rng = np.random.default_rng(3)
    r1, r2 = rng.choice([-1.0, 1.0, 1.2, -0.6], 12), rng.choice([-1.0, 1.0, 0.4], 12) + 0.5
    i1, i2 = np.repeat(np.arange(4), 3), np.repeat(np.arange(4, 8), 3)
    together = fn(np.concatenate([r1, r2]), np.concatenate([i1, i2]), **params).numpy()
    apart = np.concatenate([fn(r1, i1, **params).numpy(), fn(r2, i2, **params).numpy()])
    if local:
        np.testing.assert_array_equal(together, apart)
    else:  # the batch's statistics tie the two batches together
        assert not np.allclose(together, apart)


def test_the_lab_calls_the_real_estimator_once_or_batch_by_batch(monkeypatch):
    """A group-local estimator is called once for all batches, any other once per batch, and an
    estimator that does not say (here grpo's maths registered without the attribute) counts as
    batch-level; the advantages are the real function's, batch by batch."""
    g, b, r = _batch(groups=6, n=4, K=1, m=2, seed=7)
    groups = game_outcomes(b, ratings=r)
    method = credit.get("shared")
    rewards = method(groups)
    real_get, calls = estimators.get, []

    def counted(name):
        fn = real_get("grpo" if name == "unsaid" else name)

        def call(*args, **kwargs):
            calls.append(name)
            return fn(*args, **kwargs)

        if name != "unsaid":
            call.group_local = fn.group_local
        return call

    monkeypatch.setattr(estimators, "get", counted)
    for name, params, per_role in (("grpo", {}, 1), ("grpo", {"scale": "batch"}, 3), ("rloo", {}, 1),
                                   ("reinforce++", {}, 3), ("unsaid", {}, 3)):
        calls.clear()
        adv = role_advantages(method, groups, rewards, name, params, 3)
        assert len(calls) == 2 * per_role, (name, params)
        fn = real_get("grpo" if name == "unsaid" else name)
        for role in ("thinker_0", "solver_0"):
            u = adv[role][1]
            ref = np.concatenate([fn(u.rewards[k * 8:(k + 1) * 8], u.index[k * 8:(k + 1) * 8], **params).double().numpy()
                                  for k in range(3)])
            np.testing.assert_array_equal(adv[role][0], ref, err_msg=f"{name} {params} {role}")


def test_scores_by_hand():
    est = np.array([[0.3, 0.3, -1.0, 2.0]])
    exact = np.array([[0.1, 0.2, 0.2, 0.5]])
    right, pairs = pairwise_sign_accuracy(est, exact)
    # pairs with different exact values: (0,1) tie in est -> 1/2, (0,2) wrong, (0,3) right, (1,3) right, (2,3) right;
    # (1,2) has equal exact values: skipped
    assert pairs[0] == 5 and right[0] == pytest.approx(3.5)
    rho = spearman_rows(est, exact)
    # ranks: est [2.5, 2.5, 1, 4], exact [1, 2.5, 2.5, 4]
    re, rx = np.array([2.5, 2.5, 1, 4]), np.array([1, 2.5, 2.5, 4])
    assert rho[0] == pytest.approx(np.corrcoef(re, rx)[0, 1])
    assert np.isnan(spearman_rows(est, np.zeros((1, 4)))[0])
    assert spearman_rows(np.zeros((1, 4)), exact)[0] == 0.0
    agree, scored = sign_agreement(np.array([[0.0, -1.0, 1.0]]), np.array([[1.0, 1.0, 0.0]]))
    assert scored[0] == 2 and agree[0] == 0.5
    m, ci = mean_ci(np.array([1.0, 2.0, 3.0]))
    assert m == 2.0 and ci == pytest.approx([2 - 1.96 / np.sqrt(3), 2 + 1.96 / np.sqrt(3)])
    lo, hi = wilson_ci(0, 100)
    assert lo == pytest.approx(0.0, abs=1e-12) and 0.03 < hi < 0.04


def test_sampled_advantages_average_to_the_exact_ones():
    """RLOO's leave-one-out baseline is unbiased: under ``tree`` the Thinker's advantage of thought t
    averages to A_T(x, t) and the Solver's (grouped by thought) to A_S(x, t, a)."""
    g = make_game("helpful-harmful")
    rng = np.random.default_rng(5)
    piT = np.array([[0.5, 0.3, 0.2], [0.2, 0.5, 0.3], [0.3, 0.3, 0.4]])
    piS = np.tile([0.6, 0.4], (g.n_solver_obs, 1))
    ex = exact_values(g, piT, piS)
    b = sample(g, piT, piS, rng, groups=3000, thoughts=4, answers_per_thought=4)
    groups = game_outcomes(b)
    method = credit.get("tree")
    adv = role_advantages(method, groups, method(groups), "rloo", {}, 1)
    aT = adv["thinker_0"][0].reshape(3000, 4)
    aS = adv["solver_0"][0].reshape(3000, 4, 4)
    for x in range(3):
        for t in range(3):
            sel = (b.x[:, None] == x) & (b.t == t)
            assert aT[sel].mean() == pytest.approx(ex.A_T[x, t], abs=0.04), (x, t)
            for a in range(2):
                sel_s = sel[:, :, None] & (b.a == a)
                assert aS[sel_s].mean() == pytest.approx(ex.A_S[x, t, a], abs=0.05), (x, t, a)
    # shared reward, flat collection: the Thinker's RLOO advantage also averages to A_T (over the Solver's answers)
    bf = sample(g, piT, piS, rng, groups=6000, thoughts=4)
    gf = game_outcomes(bf)
    shared = credit.get("shared")
    aTf = role_advantages(shared, gf, shared(gf), "rloo", {}, 1)["thinker_0"][0].reshape(6000, 4)
    for x in range(3):
        for t in range(3):
            sel = (bf.x[:, None] == x) & (bf.t == t)
            assert aTf[sel].mean() == pytest.approx(ex.A_T[x, t], abs=0.05), (x, t)


def test_ccpo_event_equals_shared_and_tree_ranks_thoughts_better_on_helpful_harmful():
    """docs/method.md#ccpo measured: the event/margin bonus cannot reorder a group's thoughts; K = 2
    answers per thought (tree) rank them better at the same Solver answers."""
    g = make_game("helpful-harmful")
    specs = [MethodSpec("shared", "shared"), MethodSpec("ccpo-event", "ccpo", {"variant": "event"}),
             MethodSpec("ccpo-margin", "ccpo", {"variant": "margin"}), MethodSpec("tree", "tree")]
    rows = fidelity_scores(g, specs, [("grpo", {})], batches=1000, seed=0)
    by = {(r["collection"], r["method"]): r for r in rows}
    shared = by[("flat 8x1", "shared")]
    for m in ("ccpo-event", "ccpo-margin"):
        assert by[("flat 8x1", m)]["thinker_sign_accuracy"] == shared["thinker_sign_accuracy"]
        assert by[("flat 8x1", m)]["thinker_spearman"] == shared["thinker_spearman"]
    tree = by[("tree 4x2", "tree")]
    assert tree["thinker_sign_accuracy_ci95"][0] > shared["thinker_sign_accuracy_ci95"][1]
    assert tree["solver_generations_per_problem"] == shared["solver_generations_per_problem"] == 8
    assert by[("flat 8x1", "ccpo-event")]["solver_generations_per_problem"] == 12  # + 4 Thinker-removed answers


def test_every_builtin_runs_on_every_game_under_every_estimator():
    ests = [(e, {}) for e in estimators.available()] + [("grpo", {"scale": "batch"})]
    colls = [Collection("flat", 4, 1, 2), Collection("tree", 2, 2, 2)]
    for name in GAMES:
        g = make_game(name)
        rows = fidelity_scores(g, BUILTIN_SPECS, ests, colls, batches=3, problems_per_batch=2)
        assert len(rows) == 2 * len(BUILTIN_SPECS) * len(ests)
        for r in rows:
            assert 0.0 <= r["thinker_grad_cosine"] + 1.0 <= 2.0
            assert r["thinker_sign_accuracy"] != r["thinker_sign_accuracy"] or 0 <= r["thinker_sign_accuracy"] <= 1
        learn = learning_runs(g, BUILTIN_SPECS, ests[:2], colls, seeds=3, updates=2, problems_per_batch=2)
        assert len(learn) == 2 * len(BUILTIN_SPECS) * 2
        assert all(0 <= r["success_after"] <= 1 and r["solver_generations"] > 0 for r in learn)


def test_learning_improves_and_is_reproducible():
    g = make_game("climbing")
    spec = [MethodSpec("shared", "shared")]
    a = learning_runs(g, spec, [("grpo", {})], [FLAT], seeds=30, updates=15, lr=3.0)
    b = learning_runs(g, spec, [("grpo", {})], [FLAT], seeds=30, updates=15, lr=3.0)
    start = exact_values(g, np.full((1, 3), 1 / 3), np.full((g.n_solver_obs, 3), 1 / 3)).success
    assert a[0]["success_after"] == b[0]["success_after"]
    assert a[0]["success_after_ci95"][0] > float(start) + 0.05
    assert a[0]["solver_generations"] == 15 * 2 * 8  # updates x problems x joint answers (shared: no solo)


def test_a_registered_method_runs_through_the_lab():
    @credit.register("thought_solver", grouping={"solver_0": "thought"}, replace=True)
    def thought_solver(groups, scale: float = 1.0):
        q = credit.thought_values(groups)
        return {"thinker_0": scale * q, "solver_0": credit.joint_rewards(groups)}

    g = make_game("helpful-harmful")
    specs = [MethodSpec("thought_solver", "thought_solver"), MethodSpec("tree", "tree")]
    assert not specs[0].make().per_group  # a plugin is called batch by batch unless it says otherwise
    rows = fidelity_scores(g, specs, [("grpo", {}), ("reinforce++", {})], [TREE], batches=30)
    by = {(r["method"], r["estimator"]): r for r in rows}
    for est in ("grpo", "reinforce++"):  # the same rewards and grouping as tree: the same scores
        assert by[("thought_solver", est)]["thinker_sign_accuracy"] == by[("tree", est)]["thinker_sign_accuracy"]
        assert by[("thought_solver", est)]["solver_grad_cosine"] == pytest.approx(by[("tree", est)]["solver_grad_cosine"])
    learn = learning_runs(g, specs, [("grpo", {})], [TREE], seeds=4, updates=3)
    assert learn[0]["success_after"] == pytest.approx(learn[1]["success_after"])


def test_benchmark_writes_the_results_with_a_plugin(tmp_path):
    import credit_fidelity

    rc = credit_fidelity.main(["--games", "helpful-harmful", "signalling", "--methods", "shared", "ccpo-value", "tree",
                               "event_both", "--plugin", str(ROOT / "examples" / "event_both.py"), "--estimators", "grpo",
                               "reinforce++", "--batches", "4", "--seeds", "3", "--updates", "2", "--workers", "1",
                               "--out", str(tmp_path)])
    assert rc == 0
    record = json.loads((tmp_path / "credit_fidelity.json").read_text())
    rows = record["rows"]
    assert len(rows) == 2 * 4 * 2 * 2
    need = {"game", "method", "estimator", "thinker_sign_accuracy", "thinker_sign_accuracy_ci95", "thinker_spearman",
            "thinker_grad_cosine", "solver_sign_accuracy", "success_after", "solver_generations"}
    assert need <= set(rows[0])
    assert all(len(r["thinker_sign_accuracy_ci95"]) == 2 for r in rows)
    assert {r["method"] for r in rows} == {"shared", "ccpo-value", "tree", "event_both"}
    assert (tmp_path / "credit_fidelity.md").read_text().startswith("# credit_fidelity")
    assert (tmp_path / "credit_fidelity_plot.png").stat().st_size > 1000
    assert credit_fidelity.main(["--methods", "nope", "--out", str(tmp_path)]) == 2
    assert credit_fidelity.main(["--flat", "8x1", "--tree", "3x2", "--out", str(tmp_path)]) == 2
    assert credit_fidelity.main(["--games", "chess", "--out", str(tmp_path)]) == 2


# --------------------------------------------------------------------------- real model text


def _arith(n=2):
    from thinksolve_env import load_problems

    return load_problems("arith:n=20,difficulty=1,split=train")[:n]


class _Recording:
    """A real policy that records every generate call's size and seed."""

    def __init__(self, inner):
        self.inner, self.calls = inner, []

    def generate(self, prompts, **kw):
        self.calls.append((len(prompts), kw.get("seed")))
        return self.inner.generate(prompts, **kw)


def test_real_text_ground_truth_ranks_good_thoughts():
    """Scripted text with a known structure: a thought saying "good" makes the Solver right 90% of
    the time, "bad" 10%. The Monte Carlo ground truth comes from a separate Solver call, and
    per-thought credit (tree, K = 2) ranks the thoughts at least as well as flat shared reward."""
    from agents import ScriptedPolicy
    from algorithms.lab import real_text_fidelity
    from thinksolve_env import MathVerifier

    problems = _arith(3)
    answers = {p.problem: p.answer for p in problems}
    rng = np.random.default_rng(0)

    def think(messages):
        return "good plan" if rng.random() < 0.5 else "bad plan"

    def solve(messages):
        text = messages[-1]["content"]
        problem = next(q for q in answers if q in text)
        p = 0.9 if "good plan" in text else 0.1 if "bad plan" in text else 0.5
        return f"\\boxed{{{answers[problem] if rng.random() < p else 'nope'}}}"

    thinker, solver = _Recording(ScriptedPolicy(think)), _Recording(ScriptedPolicy(solve))
    specs = [MethodSpec("shared", "shared"), MethodSpec("tree", "tree"), MethodSpec("ccpo-event", "ccpo", {"variant": "event"})]
    colls = [Collection("flat", 4, 1, 2), Collection("tree", 2, 2, 2)]
    with MathVerifier(workers=0) as v:
        rows, info = real_text_fidelity({"thinker_0": thinker, "solver_0": solver}, problems, specs, [("grpo", {})], colls,
                                        mc_answers=32, verifier=v, seed=3, solver_max_new_tokens=8,
                                        thinker_max_new_tokens=8)
    # per collection: one Thinker call; one Solver call (joint + solo) and one ground-truth call of P*n*M prompts
    assert [c[0] for c in thinker.calls] == [3 * 4, 3 * 2]
    assert [c[0] for c in solver.calls] == [3 * 4 + 3 * 2, 3 * 4 * 32, 3 * 4 + 3 * 2, 3 * 2 * 32]
    seeds = [c[1] for c in solver.calls]
    assert seeds[0] != seeds[1] and seeds[2] != seeds[3]  # fresh answers, never the method's
    assert info["collections"]["flat 4x1"]["ground_truth_generations"] == 3 * 4 * 32
    by = {(r["collection"], r["method"]): r for r in rows}
    assert len(rows) == 6
    flat = by[("flat 4x1", "shared")]
    assert flat["thinker_sign_accuracy"] == by[("flat 4x1", "ccpo-event")]["thinker_sign_accuracy"]
    assert flat["thinker_scored_groups"] >= 1 and flat["thinker_sign_accuracy"] > 0.5
    assert by[("tree 2x2", "tree")]["solver_generations"] == 3 * 4
    assert by[("flat 4x1", "ccpo-event")]["solver_generations"] == 3 * (4 + 2)
    with pytest.raises(ValueError, match="mc_answers must be an integer >= 32"):
        real_text_fidelity({"thinker_0": thinker, "solver_0": solver}, problems, specs, [("grpo", {})], colls, mc_answers=8)


def test_real_text_with_the_tiny_transformer():
    from agents import TransformersPolicy
    from agents.models import load_model
    from algorithms.lab import real_text_fidelity
    from thinksolve_env import MathVerifier

    torch.set_num_threads(1)
    model, tok = load_model("tiny", seed=0)
    policy = _Recording(TransformersPolicy(model, tok, seed=0))
    colls = [Collection("flat", 2, 1, 2), Collection("tree", 1, 2, 2)]
    with MathVerifier(workers=0) as v:
        rows, info = real_text_fidelity({"thinker_0": policy, "solver_0": policy}, _arith(1),
                                        [MethodSpec("shared", "shared"), MethodSpec("tree", "tree")],
                                        [("grpo", {}), ("reinforce++", {})], colls, mc_answers=32, verifier=v, seed=0,
                                        thinker_max_new_tokens=6, solver_max_new_tokens=6)
    assert len(rows) == 2 * 2 * 2
    assert info["collections"]["flat 2x1"]["ground_truth_generations"] == 2 * 32
    assert info["collections"]["tree 1x2"]["ground_truth_generations"] == 32
    for r in rows:
        assert {"thinker_sign_accuracy", "thinker_sign_accuracy_ci95", "thinker_spearman", "solver_sign_accuracy"} <= set(r)


def test_rating_fidelity_by_hand():
    """A rater that credits a right thought and blames a wrong one correlates +1 with Q; invalid
    ratings count against the valid rate."""
    import numpy as np

    from algorithms.lab import rating_fidelity
    from algorithms.rollout import EpisodeGroup

    good, bad = (0.8, 0.2), (0.2, 0.8)
    # thought 0 is good (Q = +1): team right, the raters credit the Thinker;
    # thought 1 is bad (Q = -1): team wrong, the raters blame the Thinker
    g = EpisodeGroup.from_rewards([1, 1, -1, -1], answers_per_thought=2,
                                  ratings=[{"thinker_0": good, "solver_0": good}] * 4)
    out = rating_fidelity([g], np.array([[1.0, -1.0]]))
    assert out["rating_valid_rate"] == 1.0
    assert out["rating_q_correlation"] == pytest.approx(1.0)
    # crediting the Solver for the good thought's successes and blaming it for the bad one's
    # failures reverses the sign
    g2 = EpisodeGroup.from_rewards([1, 1, -1, -1], answers_per_thought=2,
                                   ratings=[{"thinker_0": bad, "solver_0": bad}] * 4)
    assert rating_fidelity([g2], np.array([[1.0, -1.0]]))["rating_q_correlation"] == pytest.approx(-1.0)
    g3 = EpisodeGroup.from_rewards([1, -1], ratings=[{"thinker_0": "nonsense", "solver_0": good},
                                                     {"thinker_0": good, "solver_0": good}])
    assert rating_fidelity([g3], np.array([[0.5, -0.5]]))["rating_valid_rate"] == 0.75
    assert rating_fidelity([EpisodeGroup.from_rewards([1, -1])], np.array([[1.0, -1.0]])) == {}


def test_rating_temperature_config():
    from algorithms.config import ConfigError, apply_overrides, preset

    assert preset("tiny-brief").rollout.rating_temperature == 0.0
    assert preset("tiny-arith").rollout.rating_temperature is None
    with pytest.raises(ConfigError, match="rating_temperature"):
        apply_overrides(preset("tiny-arith"), ["rollout.rating_temperature=-1"]).validate()
