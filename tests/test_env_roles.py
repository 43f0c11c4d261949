"""ThinkSolveEnv with chains of N roles (issue #22, METHOD.md §10): PettingZoo's suites for N = 2,
3 and 4, removal of every subset, what each role is shown, per-position briefings, per-role
prompts, and the two-role game unchanged. Real components throughout (MathVerifier, PettingZoo)."""

import itertools

import pytest
from pettingzoo.test import api_test, parallel_api_test, parallel_seed_test, render_test, seed_test

from thinksolve_env import (
    ROLES,
    SOLVER,
    THINKER,
    MathVerifier,
    Problem,
    ProblemFormatError,
    ThinkSolveEnv,
    env,
    parallel_env,
    predecessor_text,
    prompt_set,
    role_messages,
)
from thinksolve_env import prompts as P

CHAINS = {
    2: ("thinker_0", "solver_0"),
    3: ("planner_0", "critic_0", "solver_0"),
    4: ("planner_0", "thinker_0", "critic_0", "solver_0"),
}
THREE = CHAINS[3]


@pytest.fixture(scope="module")
def verifier():
    with MathVerifier() as v:
        yield v


@pytest.fixture(scope="module")
def problems(math500):
    return math500[:40]


def run(e, texts, options=None, seed=None, rewards=None):
    """One episode with ``texts[agent]`` as each agent's action; ``{agent: (obs, info)}`` at its
    turn; ``rewards`` (a dict), when given, receives each agent's reward at the end."""
    e.reset(seed=seed, options=options)
    seen = {}
    for agent in e.agent_iter():
        obs, reward, term, trunc, info = e.last()
        if term or trunc:
            if rewards is not None:
                rewards[agent] = reward
            e.step(None)
            continue
        seen[agent] = (obs, dict(info))
        e.step(texts[agent])
    return seen


# --------------------------------------------------------------------------- PettingZoo suites


@pytest.mark.parametrize("n", [2, 3, 4])
@pytest.mark.filterwarnings("ignore:ThinkSolveEnv.reset. ignoring unknown option")  # api_test passes {"options": 1}
def test_pettingzoo_api_and_seed_tests(problems, verifier, n):
    roles = CHAINS[n]
    api_test(env(problems, verifier=verifier, roles=roles), num_cycles=100)
    seed_test(lambda: env(problems, verifier=verifier, roles=roles), num_cycles=30)


@pytest.mark.parametrize("n", [2, 3, 4])
def test_pettingzoo_render_test(problems, verifier, capsys, n):
    render_test(lambda render_mode=None: env(problems, verifier=verifier, render_mode=render_mode, roles=CHAINS[n]))
    out = capsys.readouterr().out
    assert "reward" in out and f"--- {CHAINS[n][1]} ---" in out


@pytest.mark.parametrize("n", [2, 3, 4])
@pytest.mark.filterwarnings("ignore:ThinkSolveEnv.reset. ignoring unknown option")
def test_pettingzoo_parallel_tests(problems, verifier, n):
    roles = CHAINS[n]
    parallel_api_test(parallel_env(problems, verifier=verifier, roles=roles), num_cycles=60)
    parallel_seed_test(lambda: parallel_env(problems, verifier=verifier, roles=roles), num_cycles=30)


def test_env_and_parallel_env_pass_roles_on(verifier):
    p = [Problem("p", "2+2?", "4")]
    assert env(p, verifier=verifier, roles=THREE).possible_agents == list(THREE)
    pe = parallel_env(p, verifier=verifier, roles=THREE)
    assert pe.possible_agents == list(THREE)
    _, infos = pe.reset(seed=0)
    assert infos[THREE[0]]["active_agent"] == THREE[0]
    pe.step({THREE[0]: "add", THREE[1]: "ignored", THREE[2]: "ignored"})
    _, _, _, _, infos = pe.step({THREE[1]: "2+2=4"})
    assert infos[THREE[2]]["messages"][1]["content"].endswith("Message from planner_0:\nadd\n\n"
                                                               "Message from critic_0:\n2+2=4")
    _, rew, term, _, _ = pe.step({THREE[2]: "\\boxed{4}"})
    assert rew == dict.fromkeys(THREE, 1.0) and all(term.values())


# --------------------------------------------------------------------------- roles


def test_roles_default_and_spaces(verifier):
    p = [Problem("p", "q", "1")]
    e = ThinkSolveEnv(p, verifier=verifier)
    assert e.roles == ROLES == (THINKER, SOLVER) and e.possible_agents == list(ROLES)
    e4 = ThinkSolveEnv(p, verifier=verifier, roles=list(CHAINS[4]), max_thought_chars=100, max_answer_chars=300)
    assert e4.roles == CHAINS[4] and e4.possible_agents == list(CHAINS[4])
    assert [e4.action_space(a).max_length for a in e4.roles] == [100, 100, 100, 300]
    e4.reset()
    assert [e4.infos[a]["role"] for a in e4.agents] == ["thinker", "relay", "relay", "solver"]


@pytest.mark.parametrize("roles, match", [
    (["solo_0"], "at least 2"),
    ([], "at least 2"),
    (["a", "b", "a"], r"distinct; \['a'\] appear more than once"),
    (["a", 3], "non-empty strings"),
    (["a", ""], "non-empty strings"),
    (["a", "  "], "non-empty strings"),
    ("thinker_0", "sequence of agent names"),
    (7, "sequence of agent names"),
])
def test_bad_roles_are_refused_with_clear_messages(verifier, roles, match):
    with pytest.raises(ValueError, match=match):
        ThinkSolveEnv([Problem("p", "q", "1")], verifier=verifier, roles=roles)


def test_bad_remove_options(verifier):
    e = ThinkSolveEnv([Problem("p", "q", "1")], verifier=verifier, roles=THREE)
    with pytest.raises(ValueError, match=r"unknown agent\(s\) \['thinker_0'\]; choose from \['planner_0'"):
        e.reset(options={"remove": ["critic_0", "thinker_0"]})
    with pytest.raises(TypeError, match="iterable of agent names"):
        e.reset(options={"remove": 5})


# --------------------------------------------------------------------------- removal


def test_removal_of_every_subset_of_three(verifier):
    # Each role boxes its own position; the reference is the middle one's, so R tells whose text
    # was verified as well as the extracted answer does.
    texts = {a: f"my answer is \\boxed{{{k + 1}}}" for k, a in enumerate(THREE)}
    e = ThinkSolveEnv([Problem("p", "Which?", "2")], verifier=verifier, roles=THREE)
    for size in range(len(THREE) + 1):
        for removed in itertools.combinations(THREE, size):
            for form in (list(removed), tuple(removed), set(removed), *([removed[0]] if size == 1 else [])):
                rewards = {}
                seen = run(e, texts, options={"problem": 0, "remove": form}, rewards=rewards)
                present = [a for a in THREE if a not in removed]
                assert list(seen) == present
                out = e.outcome
                assert set(out) == {"reward", "verification", "removed", "problem_id", "actions"}
                assert out["removed"] == sorted(removed) and out["problem_id"] == "p"
                assert out["actions"] == {a: texts[a] for a in present}
                if not present:
                    assert e.agents == [] and out["reward"] == -1.0
                    assert out["verification"]["reason"] == "no-answer"
                    continue
                last = present[-1]
                assert out["verification"]["extracted"] == str(THREE.index(last) + 1)
                assert out["reward"] == (1.0 if last == "critic_0" else -1.0)
                assert rewards == dict.fromkeys(present, out["reward"])


def test_a_role_sees_exactly_the_present_predecessors(verifier):
    a, b, c, d = CHAINS[4]
    texts = {a: "alpha text \\boxed{7}", b: "bravo text", c: "charlie text", d: "\\boxed{7}"}
    e = ThinkSolveEnv([Problem("p", "Question?", "7")], verifier=verifier, roles=CHAINS[4])

    seen = run(e, texts, options={"remove": b})
    assert e.shown[a] == "" and b not in e.shown
    assert e.shown[c] == f"Message from {a}:\nalpha text"  # the trailing box is stripped
    assert e.shown[d] == f"Message from {a}:\nalpha text\n\nMessage from {c}:\ncharlie text"
    assert seen[c][0]["thought"] == e.shown[c] and seen[d][0]["thought"] == e.shown[d]
    user_c = seen[c][1]["messages"][1]["content"]
    assert user_c == P.CHAIN_SOLVER_USER.format(problem="Question?", thought=e.shown[c])
    assert "bravo" not in user_c and "charlie" not in user_c
    assert "bravo" not in seen[d][1]["messages"][1]["content"]
    assert [seen[x][1]["mode"] for x in (a, c, d)] == ["partial"] * 3
    assert e.thought_for_solver == e.shown[d]

    seen = run(e, texts, options={"remove": [a, b]})  # c has no predecessor: the relay's solo prompt
    assert e.shown[c] == "" and seen[c][1]["mode"] == "solo" and seen[d][1]["mode"] == "partial"
    assert seen[c][1]["messages"] == [{"role": "system", "content": P.RELAY_SYSTEM},
                                      {"role": "user", "content": P.PromptSet().relay_solo_user.format(problem="Question?")}]
    assert e.shown[d] == f"Message from {c}:\ncharlie text"

    seen = run(e, texts, options={"remove": [a, b, c]})  # the last role alone: the solo prompt
    assert seen[d][1]["messages"] == P.solo_messages("Question?") and e.shown[d] == ""
    assert e.thought_for_solver is None and seen[d][1]["mode"] == "solo"

    seen = run(e, texts)
    assert {x: seen[x][1]["mode"] for x in seen} == dict.fromkeys(CHAINS[4], "joint")
    assert e.shown[d].count("Message from") == 3


def test_shown_text_stays_within_the_budget_and_spares_short_messages(verifier):
    e = ThinkSolveEnv([Problem("p", "Q?", "1")], verifier=verifier, roles=CHAINS[4],
                      solver_thought_chars=300, max_thought_chars=5000)
    texts = {"planner_0": "short plan", "thinker_0": "x" * 5000, "critic_0": "y" * 5000, "solver_0": "\\boxed{1}"}
    seen = run(e, texts)
    shown = e.shown["solver_0"]
    assert len(shown) <= 300 and shown.startswith("Message from planner_0:\nshort plan\n\n")
    assert abs(shown.count("x") - shown.count("y")) <= 1  # equal shares of what is left
    assert e.observation_space("solver_0").contains(seen["solver_0"][0])
    # Without a budget, every message is whole and the space still holds it.
    e = ThinkSolveEnv([Problem("p", "Q?", "1")], verifier=verifier, roles=CHAINS[4],
                      solver_thought_chars=None, max_thought_chars=5000)
    seen = run(e, texts)
    assert e.shown["solver_0"].count("x") == 5000 and e.shown["solver_0"].count("y") == 5000
    assert e.observation_space("solver_0").contains(seen["solver_0"][0])


def test_predecessor_text_two_roles_is_the_bare_thought():
    assert predecessor_text([], 2, 10) is None
    assert predecessor_text([(THINKER, "abcdef \\boxed{1}")], 2, 3) == P.prepare_thought("abcdef \\boxed{1}", 3) == "abc"
    assert predecessor_text([("a", "t \\boxed{1}")], 3, None) == "Message from a:\nt"


# --------------------------------------------------------------------------- briefings


def test_per_position_briefings_reach_only_their_position(verifier):
    p = Problem("p", "Q?", "1", meta={"briefings": ["BRIEF-ZERO", "BRIEF-ONE", "BRIEF-TWO"]})
    e = ThinkSolveEnv([p], verifier=verifier, roles=THREE)
    texts = dict.fromkeys(THREE, "ok")
    seen = run(e, texts)
    for k, agent in enumerate(THREE):
        content = " ".join(m["content"] for m in seen[agent][1]["messages"])
        for j, word in enumerate(["BRIEF-ZERO", "BRIEF-ONE", "BRIEF-TWO"]):
            assert (word in content) == (j == k), (agent, word)
    assert seen[THREE[0]][1]["messages"] == P.role_messages("Q?", 0, 3, None, briefing="BRIEF-ZERO")
    assert seen[THREE[0]][1]["messages"][1]["content"] == "Q?\n\nBriefing (only you can see it):\nBRIEF-ZERO"
    assert seen[THREE[1]][1]["messages"][1]["content"].endswith("\n\nBriefing (only you can see it):\nBRIEF-ONE")
    # Removed predecessors: the solo prompts carry the position's briefing too.
    seen = run(e, texts, options={"remove": THREE[:2]})
    assert seen[THREE[2]][1]["messages"][1]["content"] == "Q?\n\nBriefing (only you can see it):\nBRIEF-TWO"
    # briefing=False ignores both kinds.
    q = Problem("q", "Q?", "1", meta={"briefing": "OLD", "briefings": ["OLD", None, "NEW"]})
    seen = run(ThinkSolveEnv([q], verifier=verifier, roles=THREE, briefing=False), texts)
    assert not any(w in m["content"] for w in ("OLD", "NEW") for a in THREE for m in seen[a][1]["messages"])
    seen = run(ThinkSolveEnv([q], verifier=verifier, roles=THREE), texts)
    assert "OLD" in seen[THREE[0]][1]["messages"][1]["content"]
    assert "NEW" in seen[THREE[2]][1]["messages"][1]["content"] and "OLD" not in seen[THREE[2]][1]["messages"][1]["content"]


def test_meta_briefing_reaches_position_zero_only(verifier):
    p = Problem("p", "Q?", "1", meta={"briefing": "SECRET"})
    seen = run(ThinkSolveEnv([p], verifier=verifier, roles=CHAINS[4]), dict.fromkeys(CHAINS[4], "ok"))
    assert [("SECRET" in seen[a][1]["messages"][1]["content"]) for a in CHAINS[4]] == [True, False, False, False]


def test_bad_briefings_are_refused_naming_the_problem(verifier):
    def make(meta, **kw):
        return ThinkSolveEnv([Problem("ok", "Q?", "1"), Problem("bad-one", "Q?", "1", meta=meta)],
                             verifier=verifier, roles=THREE, **kw)

    with pytest.raises(ValueError, match=r"problems\[1\] \('bad-one'\): meta\['briefings'\] has 2 entries but the team has 3"):
        make({"briefings": ["a", "b"]})
    with pytest.raises(TypeError, match=r"'bad-one'.*\[1\] must be a string or None"):
        make({"briefings": ["a", 3, None]})
    with pytest.raises(TypeError, match=r"'bad-one'.*one entry \(str or None\) per chain position"):
        make({"briefings": "abc"})
    with pytest.raises(ValueError, match=r"'bad-one'.*\[0\] and meta\['briefing'\] differ"):
        make({"briefing": "x", "briefings": ["y", None, None]})
    with pytest.raises(ProblemFormatError, match=r"'bad-one'.*\[2\] is 101 characters long, over the limit of 100"):
        make({"briefings": [None, None, "z" * 101]}, max_problem_chars=100)
    make({"briefings": ["a", "b"]}, briefing=False)  # ignored: nothing to check
    make({"briefing": "x", "briefings": ["x", None, None]})  # the same text twice is fine


# --------------------------------------------------------------------------- prompts


def test_default_roles_give_exactly_the_two_role_prompts(verifier):
    probs = [Problem("plain", "What is 6 times 7?", "42"),
             Problem("brief", "Compute 2+3.", "5", meta={"briefing": "2 + 3 = 5"})]
    texts = {THINKER: "multiply \\boxed{42}", SOLVER: "\\boxed{42}"}
    for kw in ({}, {"roles": ROLES}, {"roles": list(ROLES)}):
        e = ThinkSolveEnv(probs, verifier=verifier, solver_thought_chars=6, **kw)
        for i, p in enumerate(probs):
            brief = p.meta.get("briefing")
            seen = run(e, texts, options={"problem": i})
            assert seen[THINKER][1]["messages"] == P.thinker_messages(p.problem, briefing=brief)
            thought = P.prepare_thought(texts[THINKER], 6)
            assert seen[SOLVER][1]["messages"] == P.solver_messages(p.problem, thought)
            assert e.thought_for_solver == e.shown[SOLVER] == seen[SOLVER][0]["thought"] == thought
            assert [seen[a][1]["mode"] for a in ROLES] == ["joint", "joint"]
            seen = run(e, texts, options={"problem": i, "remove": THINKER})
            assert seen[SOLVER][1]["messages"] == P.solo_messages(p.problem)
            assert seen[SOLVER][1]["mode"] == "solo" and e.thought_for_solver is None
            seen = run(e, texts, options={"problem": i, "remove": SOLVER})
            assert seen[THINKER][1]["mode"] == "thinker-only"
            assert e.outcome["reward"] == (1.0 if p.answer == "42" else -1.0)  # the Thinker's text is verified
    # The system texts of a two-role team are today's, word for word.
    assert P.role_messages("x", 0, 2, None)[0]["content"] == P.THINKER_SYSTEM
    assert P.role_messages("x", 1, 2, "t")[0]["content"] == P.SOLVER_SYSTEM
    assert P.role_messages("x", 1, 2, "t") == P.solver_messages("x", "t")


@pytest.mark.parametrize("n", [3, 4])
def test_chain_system_texts_are_not_two_agent(n):
    texts = [m["content"] for k in range(n) for m in P.role_messages("x", k, n, None if k == 0 else "t")]
    texts += [m["content"] for m in P.role_messages("x", n - 1, n, None)]
    assert not any("two-agent" in t for t in texts)
    assert P.role_messages("x", 1, n, "t")[0]["content"] == P.RELAY_SYSTEM
    assert "\\boxed{}" in P.role_messages("x", n - 1, n, "t")[0]["content"]
    assert "Do not state the final answer" in P.role_messages("x", 1, n, "t")[0]["content"]


def test_per_role_overrides_and_user_templates(verifier):
    ps = prompt_set(thinker_system="MY THINKER", per_role={"critic_0": {"relay_system": "CRITIC",
                                                                        "relay_user": "Check: {thought} / {problem}"}})
    e = ThinkSolveEnv([Problem("p", "Q?", "1")], verifier=verifier, roles=CHAINS[4], prompts=ps)
    seen = run(e, {"planner_0": "plan", "thinker_0": "think", "critic_0": "crit", "solver_0": "\\boxed{1}"})
    assert seen["planner_0"][1]["messages"][0]["content"] == "MY THINKER"  # a set template is kept with N >= 3
    assert seen["thinker_0"][1]["messages"][0]["content"] == P.RELAY_SYSTEM
    assert seen["critic_0"][1]["messages"][0]["content"] == "CRITIC"
    assert seen["critic_0"][1]["messages"][1]["content"] == f"Check: {e.shown['critic_0']} / Q?"
    assert seen["solver_0"][1]["messages"][0]["content"] == P.CHAIN_LAST_SYSTEM
    assert ps.for_role("critic_0", 4).relay_system == "CRITIC" and ps.for_role("solver_0", 4).relay_system == P.RELAY_SYSTEM
    assert ps.for_role(None, 2) is ps and P.DEFAULT_PROMPTS.for_role("solver_0", 2) is P.DEFAULT_PROMPTS
    # Per-role overrides work for two roles too.
    e2 = ThinkSolveEnv([Problem("p", "Q?", "1")], verifier=verifier,
                       prompts=prompt_set(per_role={SOLVER: {"solver_user": "{thought} => {problem}"}}))
    seen = run(e2, {THINKER: "t", SOLVER: "s"})
    assert seen[SOLVER][1]["messages"][1]["content"] == "t => Q?"
    assert seen[THINKER][1]["messages"] == P.thinker_messages("Q?")
    with pytest.raises(ValueError, match=r"per_role\['critic_0'\]: unknown prompt template\(s\) \['relay_sys'\]"):
        prompt_set(per_role={"critic_0": {"relay_sys": "x"}})
    with pytest.raises(TypeError, match=r"per_role\['critic_0'\]\['relay_system'\] must be a str"):
        prompt_set(per_role={"critic_0": {"relay_system": 1}})
    with pytest.raises(ValueError, match=r"per_role names role\(s\) \['critic_9'\] that are not in the team"):
        ThinkSolveEnv([Problem("p", "Q?", "1")], verifier=verifier, roles=THREE,
                      prompts=prompt_set(per_role={"critic_9": {"relay_system": "x"}}))


def test_named_prompt_sets_have_chain_templates():
    compact = prompt_set(**P.CHAIN_TEMPLATES["compact"])
    msgs = role_messages("Q?", 1, 3, "Message", compact)
    assert msgs[0]["content"] == P.CHAIN_TEMPLATES["compact"]["relay_system"]
    assert msgs[1]["content"] == "Q?\nThoughts: Message"
    assert P.CHAIN_TEMPLATES["default"] == {}
    assert set(P.CHAIN_TEMPLATES["compact"]) <= {f for f in P.PromptSet.__dataclass_fields__ if f != "per_role"}
