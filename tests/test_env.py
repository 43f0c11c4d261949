"""ThinkSolveEnv: PettingZoo's own test suites, removal modes, hand-over and bad input."""

import pytest
from pettingzoo.test import api_test, parallel_api_test, parallel_seed_test, render_test, seed_test

from thinksolve_env import SOLVER, THINKER, MathVerifier, Problem, ThinkSolveEnv, env, parallel_env


@pytest.fixture(scope="module")
def verifier():
    with MathVerifier() as v:
        yield v


@pytest.fixture(scope="module")
def problems(math500):
    return math500[:40]


def play(e, thought="", answer="", options=None, seed=None):
    """Run one episode with constant texts; return the per-agent (reward, info) at the end."""
    e.reset(seed=seed, options=options)
    seen = {}
    for agent in e.agent_iter():
        obs, reward, term, trunc, info = e.last()
        seen[agent] = (reward, dict(info), obs)
        e.step(None if term or trunc else (thought if agent == THINKER else answer))
    return seen


# --------------------------------------------------------------------------- PettingZoo suites


@pytest.mark.filterwarnings("ignore:ThinkSolveEnv.reset. ignoring unknown option")  # api_test passes {"options": 1}
def test_pettingzoo_api_test(problems, verifier):
    api_test(env(problems, verifier=verifier), num_cycles=300)


def test_pettingzoo_seed_test(problems, verifier):
    seed_test(lambda: env(problems, verifier=verifier), num_cycles=50)


def test_pettingzoo_render_test(problems, verifier, capsys):
    render_test(lambda render_mode=None: env(problems, verifier=verifier, render_mode=render_mode))
    assert "reward" in capsys.readouterr().out  # "human" printed the transcript


@pytest.mark.filterwarnings("ignore:ThinkSolveEnv.reset. ignoring unknown option")  # parallel_api_test too
def test_pettingzoo_parallel_tests(problems, verifier):
    parallel_api_test(parallel_env(problems, verifier=verifier), num_cycles=100)
    parallel_seed_test(lambda: parallel_env(problems, verifier=verifier), num_cycles=50)


# --------------------------------------------------------------------------- the game


def test_joint_episode_rewards_both_and_hands_over_thought(verifier):
    p = Problem("p1", "What is 6 times 7?", "42")
    e = ThinkSolveEnv([p], verifier=verifier)
    e.reset(options={"problem": 0})
    assert e.agents == [THINKER, SOLVER] and e.agent_selection == THINKER
    msgs = e.infos[THINKER]["messages"]
    assert msgs[0]["role"] == "system" and msgs[1] == {"role": "user", "content": "What is 6 times 7?"}
    assert e.infos[SOLVER]["messages"] is None  # not its turn yet
    e.step("Multiply: 6*7 = 42, so the answer is $\\boxed{42}$.")
    assert e.agent_selection == SOLVER
    # The trailing boxed answer is stripped before the Solver sees the thought.
    assert e.thought_for_solver == "Multiply: 6*7 = 42, so the answer is"
    user = e.infos[SOLVER]["messages"][1]["content"]
    assert user == "Problem:\nWhat is 6 times 7?\n\nThinker's thought:\nMultiply: 6*7 = 42, so the answer is"
    assert e.observe(SOLVER) == {"problem": "What is 6 times 7?", "thought": e.thought_for_solver}
    e.step("So \\boxed{42}")
    assert e.rewards == {THINKER: 1.0, SOLVER: 1.0}
    assert all(e.terminations.values())
    v = e.infos[THINKER]["verification"]
    assert v["reward"] == 1.0 and v["correct"] and v["extracted"] == "42" and v["reference"] == "42"
    assert e.outcome["reward"] == 1.0 and e.outcome["removed"] == []


def test_last_reports_team_reward_to_the_thinker_too(verifier):
    e = env([Problem("p", "1+1?", "2")], verifier=verifier)
    seen = play(e, thought="think", answer="\\boxed{3}")
    assert seen[THINKER][0] == -1.0 and seen[SOLVER][0] == -1.0
    assert seen[THINKER][1]["verification"]["reason"] in ("mismatch",)


def test_thinker_removed_solver_gets_solo_prompt(verifier):
    e = ThinkSolveEnv([Problem("p", "What is 2+3?", "5")], verifier=verifier)
    e.reset(options={"remove": "thinker_0"})
    assert e.agents == [SOLVER] and e.agent_selection == SOLVER
    msgs = e.infos[SOLVER]["messages"]
    assert msgs[1]["content"] == "What is 2+3?" and "Thinker" not in msgs[1]["content"]
    assert e.infos[SOLVER]["mode"] == "solo"
    assert e.observe(SOLVER)["thought"] == ""
    e.step("\\boxed{5}")
    assert e.rewards == {SOLVER: 1.0} and e.outcome["removed"] == [THINKER]


def test_solver_removed_verifies_the_thinkers_text(verifier):
    e = ThinkSolveEnv([Problem("p", "What is 2+3?", "5")], verifier=verifier)
    e.reset(options={"remove": ["solver_0"]})
    assert e.agents == [THINKER]
    e.step("2+3 is 5. Final answer: 5")
    assert e.rewards == {THINKER: 1.0}
    assert e.infos[THINKER]["verification"]["extracted"] == "5"
    e.reset(options={"remove": "solver_0"})
    e.step("I think we should add the numbers.")  # no answer in the thought
    assert e.rewards == {THINKER: -1.0} and e.outcome["verification"]["reason"] == "no-answer"


def test_both_removed_nobody_acts_and_reward_is_minus_one(verifier):
    e = ThinkSolveEnv([Problem("p", "What is 2+3?", "5")], verifier=verifier)
    e.reset(options={"remove": [THINKER, SOLVER]})
    assert e.agents == [] and list(e.agent_iter()) == []
    assert e.outcome["reward"] == -1.0 and e.outcome["removed"] == [SOLVER, THINKER]
    with pytest.raises(RuntimeError, match="episode is over"):
        e.step("x")


def test_same_seed_and_options_replay_the_same_problem(math500, verifier):
    e = ThinkSolveEnv(math500, verifier=verifier)
    ids = []
    for _ in range(2):
        e.reset(seed=123)
        ids.append(e.problem.id)
    assert ids[0] == ids[1]
    draws = {e.reset(seed=s) or e.problem.id for s in range(20)}
    assert len(draws) > 10  # the seed does pick different problems
    # The counterfactual replays the same problem as the joint episode.
    e.reset(seed=7, options={"problem": "math500-17"})
    joint = e.problem
    e.reset(seed=99, options={"problem": "math500-17", "remove": THINKER})
    assert e.problem is joint and e.infos[SOLVER]["messages"][1]["content"] == joint.problem
    e.reset(options={"problem": 17})
    assert e.problem.id == "math500-17"


def test_unicode_and_latex_round_trip(verifier):
    text = "Let $x \\in \\mathbb{R}$: ∑ᵢ xᵢ² ≥ 0 — 😀 𝑥 ﬁ \x00 \u200b 中文 \\frac{1}{2}"
    e = ThinkSolveEnv([Problem("p", "Problem with ∞ and 𝔽", "1")], verifier=verifier)
    e.reset()
    e.step(text)
    assert e.thought_for_solver == text and text in e.infos[SOLVER]["messages"][1]["content"]
    obs = e.observe(SOLVER)
    assert e.observation_space(SOLVER).contains(obs)
    assert e.action_space(THINKER).contains(text)
    e.step(text)
    assert e.actions[SOLVER] == text


def test_lone_surrogates_are_replaced_and_flagged(verifier):
    e = ThinkSolveEnv([Problem("p", "q", "1")], verifier=verifier)
    e.reset()
    e.step("a\ud800b")
    assert e.thought_for_solver == "a\ufffdb" and e.infos[THINKER]["action_sanitized"]


def test_overlong_action_is_cut_and_flagged(verifier):
    e = ThinkSolveEnv([Problem("p", "q", "7")], verifier=verifier, max_thought_chars=10, max_answer_chars=20)
    e.reset()
    e.step("x" * 25)
    assert e.infos[THINKER]["action_truncated"] and e.infos[THINKER]["action_original_length"] == 25
    assert e.actions[THINKER] == "x" * 10
    e.step("y" * 100 + "\\boxed{7}")
    assert e.infos[SOLVER]["action_truncated"] and e.rewards[SOLVER] == -1.0


def test_thought_budget_keeps_the_beginning(verifier):
    e = ThinkSolveEnv([Problem("p", "q", "7")], verifier=verifier, solver_thought_chars=5)
    e.reset()
    e.step("abcdefghij")
    assert e.thought_for_solver == "abcde"


def test_bad_input_errors(verifier):
    with pytest.raises(ValueError, match="problem list is empty"):
        ThinkSolveEnv([], verifier=verifier)
    e = ThinkSolveEnv([Problem("p", "q", "1")], verifier=verifier)
    with pytest.raises(ValueError, match=r"unknown agent\(s\) \['critic_0'\]"):
        e.reset(options={"remove": "critic_0"})
    with pytest.raises(IndexError, match="out of range"):
        e.reset(options={"problem": 5})
    with pytest.raises(KeyError, match="no problem with that id"):
        e.reset(options={"problem": "zzz"})
    e.reset()
    with pytest.raises(TypeError, match="must be a str"):
        e.step(42)
    with pytest.raises(ValueError, match="render_mode"):
        ThinkSolveEnv([Problem("p", "q", "1")], render_mode="rgb_array")


def test_unknown_reset_option_warns(verifier):
    e = ThinkSolveEnv([Problem("p", "q", "1")], verifier=verifier)
    with pytest.warns(UserWarning, match=r"unknown option\(s\) \['remvoe'\]"):
        e.reset(options={"remvoe": "thinker_0"})
    assert e.agents == [THINKER, SOLVER]


def test_stepping_after_the_end_follows_pettingzoo_convention(verifier):
    e = ThinkSolveEnv([Problem("p", "q", "1")], verifier=verifier)
    e.reset()
    e.step("t")
    e.step("\\boxed{1}")
    # Dead agents must be stepped with None; anything else is an error.
    with pytest.raises(ValueError, match="dead"):
        e.step("more text")
    e.step(None)
    e.step(None)
    assert e.agents == []
    with pytest.raises(RuntimeError, match="call reset"):
        e.step(None)


def test_parallel_env_is_turn_based(verifier):
    pe = parallel_env([Problem("p", "2+2?", "4")], verifier=verifier)
    obs, infos = pe.reset(seed=0)
    assert infos[THINKER]["active_agent"] == THINKER
    obs, rew, term, trunc, infos = pe.step({THINKER: "2+2=4", SOLVER: "ignored"})
    assert infos[SOLVER]["messages"][1]["content"].endswith("2+2=4")
    obs, rew, term, trunc, infos = pe.step({SOLVER: "\\boxed{4}"})
    assert rew == {THINKER: 1.0, SOLVER: 1.0} and all(term.values())


def test_render_ansi_shows_transcript(verifier):
    e = ThinkSolveEnv([Problem("p", "2+2?", "4")], verifier=verifier, render_mode="ansi")
    e.reset()
    e.step("add")
    e.step("\\boxed{4}")
    out = e.render()
    assert "2+2?" in out and "--- thinker_0 ---\nadd" in out and "reward +1" in out
    e.close()


def test_prompt_overrides(verifier):
    from thinksolve_env import prompt_set

    ps = prompt_set(thinker_user="Think about: {problem}")
    e = ThinkSolveEnv([Problem("p", "2+2?", "4")], verifier=verifier, prompts=ps)
    e.reset()
    assert e.infos[THINKER]["messages"][1]["content"] == "Think about: 2+2?"
    with pytest.raises(ValueError, match="unknown prompt template"):
        prompt_set(thinker_usr="x")
