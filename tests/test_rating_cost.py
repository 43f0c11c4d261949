"""SEPO's ratings at their price: the stop rule never changes a parsed rating, a policy that stops
early keeps the tokens it would have written, a shared prompt prefix is prefilled once without
changing the samples, and a collection that merges and dedupes ratings gives every episode the
rating it would get alone, with a budget that counts what was generated."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agents import ScriptedPolicy, TransformersPolicy
from agents.models import build_tiny_model
from algorithms import credit
from algorithms.credit import parse_rating, rating_complete
from algorithms.rollout import collect_groups
from thinksolve_env import MathVerifier, Problem
from thinksolve_env.prompts import rating_prompts

T, S = "thinker_0", "solver_0"

# --------------------------------------------------------------------------- the stop rule

# Pieces rating texts are made of: well-formed JSON, its parts, near misses, duplicate keys,
# nested objects, fallbacks the parser reads when no object parses, and noise.
PIECES = [
    '{"outcome": "correct", "pair": [0.7, 0.3], "brief_reason": "plan"}', '{"outcome": "wrong", "pair": [0.2, 0.8]}',
    '{"pair": [0.6, 0.4]}', '{"outcome": "maybe", "pair": [0.5, 0.5]}', '{"outcome": "correct"}',
    '{"outcome": true, "pair": {"thinker": 0.9, "solver": 0.1}}', '{"outcome": "wrong", "pair": null}',
    '{"a": {"b": "}"}}', '{"outcome": "correct", "pair": [0.7, 0.3], "pair": [0.1, 0.9]}', "{bad json}",
    '{"outcome": ', '"correct"', '"wrong"', '"pair": ', "[0.8, 0.2]", "(0.3, 0.7)", "[70%, 30%]", "[40, 60]",
    "pair: [0.9, 0.1]", "outcome: correct", "outcome=wrong", "{", "}", "[", "]", '"', "\\", ",", ":", " ", "\n",
    "0.5", "1e999", "NaN", "brief_reason", "Sure! ", "}}", '{"x": "\\"}"}',
]


def _prefixes_agree(text: str) -> None:
    for cut in range(len(text) + 1):
        head = text[:cut]
        if rating_complete(head):
            for correct in (True, False):
                assert parse_rating(head, correct) == parse_rating(text, correct), (head, text)


@settings(max_examples=400, deadline=None)
@given(st.lists(st.sampled_from(PIECES), min_size=1, max_size=10))
def test_a_complete_rating_parses_as_any_longer_text(pieces):
    _prefixes_agree("".join(pieces))


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet='{}[]":,. 0123456789abcdeoutcmpairwrg\\', max_size=60))
def test_a_complete_rating_parses_as_any_longer_text_character_soup(text):
    _prefixes_agree(text)


def test_the_stop_rule_fires_where_the_object_closes():
    full = '{"outcome": "correct", "pair": [0.7, 0.3], "brief_reason": "plan"} and then some {"outcome": "wrong"}'
    end = full.index("}") + 1
    assert not any(rating_complete(full[:k]) for k in range(end))
    assert rating_complete(full[:end]) and parse_rating(full[:end], True).pair == (0.7, 0.3)
    # a closed object whose outcome is stated but whose pair is not: the rest of the text decides
    assert not rating_complete('{"outcome": "correct"}')
    assert parse_rating('{"outcome": "correct"} pair: [0.6, 0.4]', True).pair == (0.6, 0.4)
    # an unrecognisable outcome is invalid whatever follows
    assert rating_complete('{"outcome": "maybe"}')
    # an unclosed object never is: a later key, or a later object, could change the parse
    assert not rating_complete('{"outcome": "correct", "pair": [0.5, 0.5], "brief_reaso')
    assert parse_rating('{"outcome": "correct", "pair": [0.5, 0.5], "pair": [0.9, 0.1]}', True).pair == (0.9, 0.1)
    assert rating_complete.trigger == "}" and credit.get("sepo").rating_stop is rating_complete
    assert credit.get("shared").rating_stop is None


# --------------------------------------------------------------------------- the policy


def _lively(seed: int) -> TransformersPolicy:
    """The tiny model with larger random weights: the default initialisation writes one repeated
    token greedily, this one writes varied text (some of it ending early, some with "}")."""
    return TransformersPolicy(*build_tiny_model(seed, initializer_range=0.2))


@pytest.fixture(scope="module")
def tiny():
    return _lively(0)


def _chat(system: str, user: str) -> list[dict]:
    return [{"role": "system", "content": system}, {"role": "user", "content": user}]


PROMPTS = [_chat("Rater: reply with JSON: outcome, pair, brief_reason.", f"{p}\nThought: {t}\nOutcome: correct. You are the {r}.")
           for p in ("Compute 2+3.", "Compute (4 + 7) * 9.", "What is 12*12?")
           for t in ("add them", "add them up", "multiply", "x") for r in ("Thinker", "Solver")]


def _twice_e(text: str) -> bool:
    return text.count("e") >= 2


_twice_e.trigger = "e"


@pytest.mark.parametrize("trigger", [True, False])
def test_a_stopped_row_keeps_the_tokens_it_would_have_written(tiny, trigger):
    def stop(text: str) -> bool:
        return text.count("e") >= 2

    if trigger:
        stop.trigger = "e"
    full = tiny.generate(PROMPTS, max_new_tokens=40, temperature=0.0)
    cut = tiny.generate(PROMPTS, max_new_tokens=40, temperature=0.0, stop=stop)
    stopped = 0
    for f, c in zip(full, cut):
        k = len(c.token_ids)
        assert c.token_ids == f.token_ids[:k]
        np.testing.assert_allclose(c.logprobs, f.logprobs[:k], atol=1e-5)
        ends = [stop(tiny.tokenizer.decode(f.token_ids[:j], skip_special_tokens=True)) for j in range(1, k + 1)]
        if c.finish_reason == "stop" and not (c.token_ids and c.token_ids[-1] in tiny.eos_token_ids):
            stopped += 1
            assert ends[-1] and not any(ends[:-1]) and stop(c.text)  # at the first token that made it true
        else:
            assert c.token_ids == f.token_ids and not any(ends)
    assert stopped > len(PROMPTS) // 2


def test_a_shared_prefix_is_prefilled_once_and_changes_nothing(tiny):
    runs = {}
    for share in (False, True):
        tiny.share_prefix, tiny.prefill_tokens = share, 0
        runs[share] = (tiny.generate(PROMPTS, max_new_tokens=24, temperature=0.0), tiny.prefill_tokens)
    tiny.share_prefix = True
    (plain, plain_tokens), (shared, shared_tokens) = runs[False], runs[True]
    assert plain_tokens == sum(len(c.prompt_token_ids) for c in plain)
    assert shared_tokens < 0.6 * plain_tokens  # three problems: their prefixes once each
    for a, b in zip(plain, shared):
        assert a.token_ids == b.token_ids and a.text == b.text and a.prompt_token_ids == b.prompt_token_ids
        np.testing.assert_allclose(a.logprobs, b.logprobs, atol=1e-4)
    # a prompt that is a prefix of another still gets logits of its own last token
    short = [_chat("sys", "abc"), _chat("sys", "abc def"), _chat("sys", "abc def ghi")]
    tiny.share_prefix = False
    a = tiny.generate(short, max_new_tokens=8, temperature=0.0)
    tiny.share_prefix = True
    assert [c.token_ids for c in tiny.generate(short, max_new_tokens=8, temperature=0.0)] == [c.token_ids for c in a]


# --------------------------------------------------------------------------- the collection

PROBLEMS = [Problem("a", "What is 2+3?", "5"), Problem("b", "Compute (4 + 7) * 9.", "99")]


@pytest.fixture()
def verifier():
    with MathVerifier(workers=0) as v:
        yield v


def _team():
    """A scripted team (fast, and its answers verify without symbolic work): thoughts cycle through
    three texts and each gets its own answer, so some transcripts repeat."""
    count = {"t": 0}

    def thinker(msgs):
        count["t"] += 1
        return ("Add the numbers.", "Think about it.", "Multiply first.")[count["t"] % 3]

    def solver(msgs):
        return "\\boxed{5}" if "Add" in msgs[-1]["content"] else "\\boxed{99}"

    return {T: ScriptedPolicy(thinker, name="thinker"), S: ScriptedPolicy(solver, name="solver")}


def _alone(policy, prompt, budget=32):
    """The rating the policy writes for one prompt, generated alone (no batch, no stop, no shared prefill)."""
    share, policy.share_prefix = policy.share_prefix, False
    try:
        return policy.generate([prompt], max_new_tokens=budget, temperature=0.0)[0]
    finally:
        policy.share_prefix = share


def _credit(groups):
    return credit.get("sepo")(groups)


@pytest.mark.parametrize("answers_per_thought", [1, 2])
def test_greedy_ratings_equal_rating_each_episode_alone(verifier, answers_per_thought):
    th = _lively(1)
    so = _lively(2)
    groups = collect_groups(PROBLEMS, _team(), raters={T: th, S: so}, group_size=4, answers_per_thought=answers_per_thought,
                            needs=credit.get("sepo"), verifier=verifier, seed=3, rating_temperature=0.0,
                            rating_max_new_tokens=32)
    episodes = [e for g in groups for e in g.episodes]
    assert len({json.dumps(e.rating_prompts[T]) for e in episodes}) < len(episodes)  # some transcripts repeat
    written = {}  # each distinct prompt's rating written alone
    for rater, pol in ((T, th), (S, so)):
        distinct = {json.dumps(e.rating_prompts[rater], sort_keys=True) for e in episodes}
        budget = groups.budget[f"rating_{'thinker' if rater == T else 'solver'}"]
        assert budget["generations"] == len(distinct)
        seen = {}
        for e in episodes:
            key = json.dumps(e.rating_prompts[rater], sort_keys=True)
            if key not in written:
                written[key] = _alone(pol, e.rating_prompts[rater])
            alone = written[key]
            assert e.rating_completions[rater].token_ids == alone.token_ids and e.ratings[rater] == alone.text
            for correct in (True, False):
                assert parse_rating(e.ratings[rater], correct) == parse_rating(alone.text, correct)
            seen[json.dumps(e.rating_prompts[rater], sort_keys=True)] = len(e.rating_completions[rater].token_ids)
        assert budget["tokens"] == sum(seen.values())
    # SEPO's credit from the collected ratings equals the credit from the ratings written alone
    got = _credit(groups)
    for e in episodes:
        e.ratings = {r: written[json.dumps(e.rating_prompts[r], sort_keys=True)].text for r in (T, S)}
    want = _credit(groups)
    for role in (T, S):
        np.testing.assert_array_equal(got[role], want[role])


def test_identical_transcripts_are_rated_once_under_tree_collection(verifier):
    pol_t = _lively(1)
    pol_s = _lively(2)
    # everything greedy: a problem's thoughts, and a thought's answers, are all the same text
    groups = collect_groups(PROBLEMS, {T: pol_t, S: pol_s}, group_size=2, answers_per_thought=3,
                            needs=credit.get("sepo"), verifier=verifier, seed=0, temperature=0.0,
                            max_new_tokens=8, rating_max_new_tokens=16)
    assert len({e.actions[S] for g in groups for e in g.episodes}) == len(PROBLEMS)
    for rater in (T, S):
        b = groups.budget[f"rating_{'thinker' if rater == T else 'solver'}"]
        assert b["generations"] == len(PROBLEMS)  # one rating per problem, shared by its six episodes
        for g in groups:
            first = g.episodes[0].rating_completions[rater]
            assert all(e.rating_completions[rater] is first for e in g.episodes)
        assert b["tokens"] == sum(len(g.episodes[0].rating_completions[rater].token_ids) for g in groups)
    # sampled ratings stay one sample per episode
    sampled = collect_groups(PROBLEMS, {T: pol_t, S: pol_s}, group_size=2, answers_per_thought=3,
                             needs=credit.get("sepo"), verifier=verifier, seed=0, temperature=0.0,
                             rating_temperature=1.0, max_new_tokens=8, rating_max_new_tokens=16)
    assert sampled.budget["rating_thinker"]["generations"] == 2 * 2 * 3


def test_one_rating_call_for_both_raters_of_a_shared_policy(verifier):
    both = _lively(1)
    alone_t = _lively(1)
    kw = dict(group_size=3, needs=credit.get("sepo"), verifier=verifier, seed=5, temperature=1.0,
              rating_temperature=0.0, max_new_tokens=10, rating_max_new_tokens=24)
    shared = collect_groups(PROBLEMS, {T: both, S: both}, **kw)
    split = collect_groups(PROBLEMS, {T: both, S: alone_t}, **kw)  # same weights, two objects: two calls
    assert shared.budget["generate_calls"] == {T: 2, S: 1}  # thoughts + both raters' ratings; answers
    assert split.budget["generate_calls"] == {T: 2, S: 2}
    for g1, g2 in zip(shared, split):
        for e1, e2 in zip(g1.episodes, g2.episodes):
            assert e1.actions == e2.actions
            for rater in (T, S):
                assert e1.rating_completions[rater].token_ids == e2.rating_completions[rater].token_ids
    for phase in ("rating_thinker", "rating_solver"):
        assert shared.budget[phase] == split.budget[phase]


def test_a_stop_rule_ends_ratings_early_and_the_budget_counts_what_was_written(verifier):
    pol_t = _lively(1)
    pol_s = _lively(2)
    kw = dict(group_size=3, needs={"ratings"}, verifier=verifier, seed=2, temperature=1.0, rating_temperature=0.0,
              max_new_tokens=10, rating_max_new_tokens=40)
    full = collect_groups(PROBLEMS, {T: pol_t, S: pol_s}, **kw)
    cut = collect_groups(PROBLEMS, {T: pol_t, S: pol_s}, rating_stop=_twice_e, **kw)
    shorter = 0
    for g1, g2 in zip(full, cut):
        for e1, e2 in zip(g1.episodes, g2.episodes):
            for rater in (T, S):
                a, b = e1.rating_completions[rater].token_ids, e2.rating_completions[rater].token_ids
                assert b == a[: len(b)]
                shorter += len(b) < len(a)
    assert shorter > 0
    for phase in ("rating_thinker", "rating_solver"):
        assert cut.budget[phase]["generations"] == full.budget[phase]["generations"]
        written = {id(e.rating_completions[T if phase == "rating_thinker" else S]): e for g in cut for e in g.episodes}
        assert cut.budget[phase]["tokens"] == sum(
            len(e.rating_completions[T if phase == "rating_thinker" else S].token_ids) for e in written.values())
        assert cut.budget[phase]["tokens"] < full.budget[phase]["tokens"]


def test_a_judge_model_rates_the_same_transcripts(verifier):
    team = _lively(1)
    judge = _lively(7)
    kw = dict(group_size=2, needs={"ratings"}, verifier=verifier, seed=2, temperature=1.0, rating_temperature=0.0,
              max_new_tokens=8, rating_max_new_tokens=12)
    own = collect_groups(PROBLEMS, {T: team, S: team}, **kw)
    judged = collect_groups(PROBLEMS, {T: team, S: team}, raters={T: judge, S: judge}, **kw)
    for g1, g2 in zip(own, judged):
        for e1, e2 in zip(g1.episodes, g2.episodes):
            assert e1.actions == e2.actions  # the same transcripts
            assert e2.ratings[T] == _alone(judge, e2.rating_prompts[T], 12).text
    assert judged.budget["generate_calls"] == {T: 2, S: 1}


def test_rating_prompts_of_a_group_share_a_long_prefix(tiny):
    # what share_prefix relies on: a problem's rating prompts differ only after the problem text
    ps = [rating_prompts("What is 2+3?", t, a, c) for t, a, c in
          (("add", "\\boxed{5}", True), ("sum", "\\boxed{6}", False), ("add", "\\boxed{5}", True))]
    ids = [tiny.encode_prompt(p[T]) for p in ps] + [tiny.encode_prompt(p[S]) for p in ps]
    common = min(len(_lcp(ids[0], x)) for x in ids[1:])
    assert common > 0.7 * min(map(len, ids))
    assert ids[0] == ids[2]


def _lcp(a, b):
    k = 0
    while k < min(len(a), len(b)) and a[k] == b[k]:
        k += 1
    return a[:k]


def test_rating_fidelity_reports_intervals_over_problems_and_why_ratings_failed():
    from algorithms import EpisodeGroup
    from algorithms.lab import rating_fidelity

    good = '{"outcome": "correct", "pair": [0.8, 0.2]}'
    groups = [EpisodeGroup.from_rewards([1, 1, -1, -1], answers_per_thought=2,
                                        ratings=[{T: good if k % 2 else "no idea", S: "pair: [0.3, 0.7]"}] * 4)
              for k in range(6)]
    Q = np.array([[0.5 + 0.05 * k, -0.5] for k in range(6)])
    out = rating_fidelity(groups, Q, resamples=200)
    lo, hi = out["rating_valid_rate_ci95"]
    assert lo <= out["rating_valid_rate"] <= hi and lo < hi  # problems differ in validity: a real interval
    assert sum(out["rating_reasons"].values()) == 2 * 6 * 4 and out["rating_reasons"]["unparsable"] == 3 * 4
    assert out["rated_episodes"] == 24 and out["rated_problems"] == 6
    clo, chi = out["rating_q_correlation_ci95"]
    assert clo <= out["rating_q_correlation"] <= chi
