"""Credit methods: hand-computed examples of every formula (docs/method.md#credit-methods), the CCPO property,
the registry, and malformed ratings. Expected values are written out from the formulas."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from algorithms import credit, estimators
from algorithms.credit.rating import parse_rating
from algorithms.rollout import EpisodeGroup

T, S = "thinker_0", "solver_0"
G = EpisodeGroup.from_rewards


def groups_3():
    # b = −0.5 (<0), b = 1/3 (>0), b = 0.
    return [
        G([1, -1, 1, -1], solo=[-1, -1, 1, -1], no_solver=[1, -1, -1, -1]),
        G([1, -1], solo=[1, 1, -1], no_solver=[-1, 1]),
        G([1, -1], solo=[1, -1], no_solver=[1, 1]),
    ]


def test_available_and_unknown_names():
    assert credit.available()[:5] == ["shared", "ccpo", "sepo", "difference", "shapley"]
    with pytest.raises(ValueError, match="available: shared, ccpo, sepo, difference, shapley"):
        credit.get("coma")
    with pytest.raises(TypeError, match=r"no parameter.*'lambda'.*variant, lam, alpha, eta, decay"):
        credit.get("ccpo", **{"lambda": 0.1})
    with pytest.raises(ValueError, match="unknown ccpo variant 'evnt'; available: event, margin, normalized"):
        credit.get("ccpo", variant="evnt")


def test_shared():
    r = credit.get("shared")(groups_3())
    np.testing.assert_array_equal(r[T], [1, -1, 1, -1, 1, -1, 1, -1])
    np.testing.assert_array_equal(r[S], r[T])
    assert credit.get("shared").requires == frozenset()


def test_ccpo_event_hand_computed():
    m = credit.get("ccpo")  # event, λ = 0.2
    assert m.requires == {"solo"}
    r = m(groups_3())
    # b<0: helped where R>0 (+0.2); b>0: hurt where R<0 (−0.2); b=0: nothing.
    np.testing.assert_allclose(r[T], [1.2, -1, 1.2, -1, 1, -1.2, 1, -1])
    np.testing.assert_array_equal(r[S], [1, -1, 1, -1, 1, -1, 1, -1])
    assert m.metrics["ccpo/helped"] == 2 / 8 and m.metrics["ccpo/hurt"] == 1 / 8


def test_ccpo_margin_hand_computed():
    m = credit.get("ccpo", variant="margin", lam=0.2)
    assert m.requires == {"solo", "no_solver"}
    r = m(groups_3())
    # r_T = R + 0.1(R − b); r_S = R + 0.1(R − R_¬S)
    np.testing.assert_allclose(r[T], [1.15, -1.05, 1.15, -1.05, 1 + 0.1 * (2 / 3), -1 + 0.1 * (-4 / 3), 1.1, -1.1])
    np.testing.assert_allclose(r[S], [1, -1, 1.2, -1, 1.2, -1.2, 1, -1.2])


def test_difference_and_shapley_hand_computed():
    gs = groups_3()
    d = credit.get("difference")(gs)
    np.testing.assert_allclose(d[T], [1.5, -0.5, 1.5, -0.5, 2 / 3, -4 / 3, 1, -1])
    np.testing.assert_allclose(d[S], [0, 0, 2, 0, 2, -2, 0, -2])
    s = credit.get("shapley")(gs)
    # φ_T = ½[(R¬S + 1) + (R − b)],  φ_S = ½[(b + 1) + (R − R¬S)]
    np.testing.assert_allclose(s[T], [1.75, -0.25, 0.75, -0.25, 1 / 3, 1 / 3, 1.5, 0.5])
    np.testing.assert_allclose(s[S], [0.25, 0.25, 1.25, 0.25, 5 / 3, -1 / 3, 0.5, -0.5])
    np.testing.assert_allclose(s[T] + s[S], [2, 0, 2, 0, 2, 0, 2, 0])


def sepo_group():
    return G([1, -1], ratings=[
        {T: '{"outcome": "correct", "pair": [0.7, 0.3], "brief_reason": "plan"}', S: "pair: [0.6, 0.4]"},
        {T: 'Sure! {"outcome": "wrong", "pair": [0.2, 0.8]}', S: "I would say the solver is mostly to blame."},
    ])


def test_sepo_hand_computed_group_centred():
    m = credit.get("sepo")  # η = 0.3, λ = 0.2, center = group
    r = m([sepo_group()])
    # ep0: s_T = .3·.7 + .7·.6 = .63, s_S = .3·.4 + .7·.3 = .33 → w_T = 21/32
    # ep1 (Solver's rating is prose → neutral): s_T = .3·.2 + .7·.5 = .41, s_S = .3·.5 + .7·.8 = .71 → w_T = 41/112
    # mean w_T = 229/448 → bonus_T = ±65/448, bonus_S = ∓65/448
    b = 65 / 448
    np.testing.assert_allclose(r[T], [1 + 0.2 * b, -1 + 0.2 * b])
    np.testing.assert_allclose(r[S], [1 - 0.2 * b, -1 - 0.2 * b])
    assert m.metrics["sepo/valid_rate"] == 0.75
    assert m.metrics["sepo/valid_rate_solver"] == 0.5 and m.metrics["sepo/invalid_unparsable"] == 1


def test_sepo_hand_computed_no_centring():
    r = credit.get("sepo", center="none", lam_credit=0.2, lam_blame=0.2)([sepo_group()])
    # bonus = w − 0.5: ep0 T +5/32, S −5/32; ep1 T −15/112, S +15/112
    np.testing.assert_allclose(r[T], [1 + 0.2 * 5 / 32, -1 + 0.2 * 15 / 112])
    np.testing.assert_allclose(r[S], [1 - 0.2 * 5 / 32, -1 - 0.2 * 15 / 112])


@pytest.mark.parametrize("text, reason", [
    ('{"outcome": "correct", "pair": [1e308, 1e308]}', "pair-not-in-set"),
    ('{"outcome": "correct", "pair": [NaN, 0.5]}', "pair-not-in-set"),
    ('{"outcome": "correct", "pair": [0.75, 0.25]}', "pair-not-in-set"),
    ('{"outcome": "correct", "pair": [1.0, 0.0]}', "pair-not-in-set"),
    ('{"outcome": "wrong", "pair": [0.7, 0.3]}', "outcome-mismatch"),
    ('{"outcome": "maybe", "pair": [0.7, 0.3]}', "outcome-mismatch"),
    ("outcome: incorrect, pair: [0.7, 0.3]", "outcome-mismatch"),
    ('{"pair": [1' + "0" * 5000 + ", 1]}", "unparsable"),
    ("[" * 50_000, "unparsable"),
    ("The Thinker did most of the work.", "unparsable"),
    ("", "unparsable"),
    (None, "missing"),
    (12, "unparsable"),
])
def test_malformed_ratings_fall_back_to_neutral(text, reason):
    r = parse_rating(text, correct=True)
    assert (r.pair, r.valid, r.reason) == ((0.5, 0.5), False, reason)


@pytest.mark.parametrize("text, pair", [
    ('{"outcome": "correct", "pair": [0.7, 0.3], "brief_reason": "the {plan} was key"}', (0.7, 0.3)),
    ('```json\n{"outcome":"correct","pair":["0.4","0.6"]}\n```', (0.4, 0.6)),
    ("pair = [0.9, 0.1]", (0.9, 0.1)),
    ("I'd split it (70%, 30%).", (0.7, 0.3)),
    ("[20, 80]", (0.2, 0.8)),
    ('{"outcome": "correct", "pair": {"thinker": 0.1, "solver": 0.9}}', (0.1, 0.9)),
    ((0.6, 0.4), (0.6, 0.4)),
])
def test_tolerant_rating_formats(text, pair):
    r = parse_rating(text, correct=True)
    assert r.valid and r.pair == pair


def test_adversarial_ratings_are_counted_not_raised():
    bad = ['{"pair": [1e999, 0]}', "NaN", '{"outcome": "wrong", "pair": [0.9, 0.1]}', "lorem ipsum"]
    g = G([1, 1, 1, 1], ratings=[{T: b, S: b} for b in bad])
    m = credit.get("sepo")
    r = m([g])
    np.testing.assert_array_equal(r[T], [1, 1, 1, 1])  # all neutral → no shaping
    assert m.metrics["sepo/valid_rate"] == 0.0 and m.metrics["sepo/ratings"] == 8


def test_ccpo_normalized_warmup_then_moving_averages():
    m = credit.get("ccpo", variant="normalized")  # α = η = 1, decay 0.99, warmup 10
    g = G([1, 1, -1, -1], solo=[-1, 1, -1, 1])  # paired Δ = [2, 0, 0, −2]
    r = m([g, g, g])  # 12 samples, before warmup: μ = 0, σ = 1, g = sigmoid(0) = ½
    eps = 1e-6
    np.testing.assert_allclose(r[T], [math.tanh(2 / (1 + eps)), 0, 0, -math.tanh(2 / (1 + eps))] * 3)
    np.testing.assert_allclose(r[S], [0, 1, -1, 0] * 3, atol=1e-6)
    # First batch sets the stats: Δ mean 0 var 2; joint mean 0 var 1; solo mean 0 var 1.
    assert m.state_dict() == {"count": 12, "mean": {"delta": 0.0, "joint": 0.0, "solo": 0.0},
                              "var": {"delta": 2.0, "joint": 1.0, "solo": 1.0}}
    h = G([1, 1], solo=[-1, -1])  # Δ = [2, 2]
    r = m([h])
    np.testing.assert_allclose(r[T], [math.tanh(2 / (math.sqrt(2) + eps))] * 2)
    np.testing.assert_allclose(r[S], [0, 0], atol=1e-6)  # g = ½, z_joint = 1, z_solo = −1
    saved = m.state_dict()
    np.testing.assert_allclose([saved["mean"]["delta"], saved["var"]["delta"]], [0.02, 1.98])
    np.testing.assert_allclose([saved["mean"]["joint"], saved["var"]["joint"], saved["mean"]["solo"]],
                               [0.01, 0.99, -0.01])
    r3 = m([h])
    sd = math.sqrt(1.98)
    gate = 1 / (1 + math.exp(-0.02 / (sd + eps)))
    z = 0.99 / (math.sqrt(0.99) + eps)
    np.testing.assert_allclose(r3[T], [math.tanh(1.98 / (sd + eps))] * 2)
    np.testing.assert_allclose(r3[S], [gate * z - (1 - gate) * z] * 2)
    # Checkpoint/resume: a fresh method loaded with the saved state gives the same rewards.
    fresh = credit.get("ccpo", variant="normalized")
    fresh.load_state_dict(saved)
    np.testing.assert_allclose(fresh([h])[S], r3[S])
    with pytest.raises(ValueError, match="load_state_dict"):
        fresh.load_state_dict({"count": 3})


def test_ccpo_normalized_pairs_k_mod_m():
    m = credit.get("ccpo", variant="normalized")
    r = m([G([1, 1, 1], solo=[1, -1])])  # pairs: solo[0], solo[1], solo[0] → Δ = 0, 2, 0
    np.testing.assert_allclose(r[T], [0, math.tanh(2 / (1 + 1e-6)), 0])


# --------------------------------------------------------------------------- docs/method.md#ccpo


def test_event_and_margin_only_rescale_the_group_centred_thinker_advantage():
    """Under GRPO scale="none", ccpo/event multiplies the Thinker's shared-reward advantage by
    1 + λ/2 = 1.1 in groups with b ≠ 0 and leaves it alone where b = 0; margin multiplies it by
    1.1 everywhere; with the group std divided out nothing changes."""
    gs = groups_3() + [G([1, 1], solo=[-1, -1], no_solver=[1, -1])]  # + an all-equal group
    idx = credit.group_index(gs)
    grpo = estimators.get("grpo")
    shared = credit.get("shared")(gs)[T]
    a_shared = grpo(shared, idx, scale="none").numpy()
    np.testing.assert_allclose(a_shared, [1, -1, 1, -1, 1, -1, 1, -1, 0, 0])
    a_event = grpo(credit.get("ccpo", variant="event", lam=0.2)(gs)[T], idx, scale="none").numpy()
    np.testing.assert_allclose(a_event, [1.1, -1.1, 1.1, -1.1, 1.1, -1.1, 1, -1, 0, 0], rtol=1e-6)
    a_margin = grpo(credit.get("ccpo", variant="margin", lam=0.2)(gs)[T], idx, scale="none").numpy()
    np.testing.assert_allclose(a_margin, 1.1 * a_shared, rtol=1e-6)
    for v in ("event", "margin"):
        a = grpo(credit.get("ccpo", variant=v)(gs)[T], idx, scale="group").numpy()
        np.testing.assert_allclose(a, grpo(shared, idx, scale="group").numpy(), atol=1e-5)
    # Without a per-group baseline (REINFORCE++'s batch whitening) the shaping is not a rescale.
    rpp = estimators.get("reinforce++")
    a1 = rpp(credit.get("ccpo")(gs)[T]).numpy()
    a0 = rpp(shared).numpy()
    assert not np.allclose(a1 / np.where(a0 == 0, 1, a0), (a1 / np.where(a0 == 0, 1, a0))[0])


# --------------------------------------------------------------------------- requirements and registry


def test_missing_counterfactual_is_named():
    with pytest.raises(credit.MissingCounterfactualError, match="'solo' counterfactual \\(the Thinker-removed"):
        credit.get("ccpo")([G([1, -1])])
    with pytest.raises(credit.MissingCounterfactualError, match="'no_solver'"):
        credit.get("shapley")([G([1, -1], solo=[1])])
    with pytest.raises(credit.MissingCounterfactualError, match="'ratings'"):
        credit.check_needs(credit.get("sepo"), {"solo"})
    credit.check_needs(credit.get("difference"), credit.get("shapley"))  # same requires: fine
    with pytest.raises(ValueError, match=r"unknown counterfactual.*'solo_thinker'"):
        credit.normalize_needs({"solo_thinker"})


def test_register_function_and_class():
    @credit.register("test_solver_bonus", requires={"solo"})
    def solver_bonus(groups, bonus=0.1):
        R = credit.joint_rewards(groups)
        return {T: R, S: R + bonus * (R - credit.solo_baselines(groups))}

    try:
        m = credit.get("test_solver_bonus", bonus=0.5)
        assert m.name == "test_solver_bonus" and m.requires == {"solo"} and "test_solver_bonus" in credit.available()
        np.testing.assert_allclose(m([G([1, -1], solo=[1, -1])])[S], [1.5, -1.5])
        with pytest.raises(credit.MissingCounterfactualError):
            m([G([1, -1])])
        with pytest.raises(ValueError, match="already registered"):
            credit.register("test_solver_bonus")(solver_bonus)

        @credit.register("test_nan")
        class Bad(credit.CreditMethod):
            def compute(self, groups):
                return {T: [float("nan")] * 2, S: [0, 0]}

        with pytest.raises(ValueError, match=r"'test_nan'.*NaN"):
            credit.get("test_nan")([G([1, -1])])
    finally:
        credit.unregister("test_solver_bonus")
        credit.unregister("test_nan")


# --------------------------------------------------------------------------- properties

pm1 = st.sampled_from([-1.0, 1.0])


@st.composite
def cf_groups(draw):
    out = []
    for _ in range(draw(st.integers(1, 3))):
        n = draw(st.integers(1, 5))
        out.append(G(draw(st.lists(pm1, min_size=n, max_size=n)), solo=draw(st.lists(pm1, min_size=1, max_size=5)),
                     no_solver=draw(st.lists(pm1, min_size=n, max_size=n))))
    return out


@settings(max_examples=60, deadline=None)
@given(cf_groups())
def test_shapley_efficiency(gs):
    s = credit.get("shapley")(gs)
    np.testing.assert_allclose(s[T] + s[S], credit.joint_rewards(gs) + 1.0, atol=1e-12)


rating_text = st.one_of(
    st.sampled_from(credit.sepo.RATING_PAIRS).map(lambda p: f'{{"pair": [{p[0]}, {p[1]}]}}'),
    st.tuples(st.floats(allow_nan=True, allow_infinity=True), st.floats()).map(lambda p: f"pair: [{p[0]}, {p[1]}]"),
    st.text(max_size=30),
    st.none(),
)


@st.composite
def rated_groups(draw):
    out = []
    for _ in range(draw(st.integers(1, 3))):
        n = draw(st.integers(1, 4))
        out.append(G(draw(st.lists(pm1, min_size=n, max_size=n)),
                     ratings=[{T: draw(rating_text), S: draw(rating_text)} for _ in range(n)]))
    return out


@settings(max_examples=60, deadline=None)
@given(rated_groups(), st.floats(0, 1), st.floats(0, 1), st.floats(0, 1), st.sampled_from(["group", "none"]))
def test_sepo_never_reorders_correct_and_wrong(gs, eta, lc, lb, center):
    r = credit.get("sepo", eta=eta, lam_credit=lc, lam_blame=lb, center=center)(gs)
    R = credit.joint_rewards(gs)
    for a in (T, S):
        assert np.all(np.isfinite(r[a]))
        if (R > 0).any() and (R < 0).any():
            assert r[a][R > 0].min() > r[a][R < 0].max()
