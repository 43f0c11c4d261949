"""The credit comparison benchmark, credit plugins, and the registered-method example of the README."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

from algorithms import credit
from algorithms.cli import main as cli_main
from algorithms.config import ConfigError, apply_overrides, preset
from algorithms.rollout import EpisodeGroup

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "event_both.py"
sys.path.insert(0, str(ROOT / "benchmarks"))
import credit_comparison as cc  # noqa: E402

T, S = "thinker_0", "solver_0"


pytestmark = pytest.mark.usefixtures("credit_registry_restored")


def test_example_plugin_registers_a_method_with_hand_computed_rewards():
    credit.load_plugin(str(EXAMPLE))
    assert "event_both" in credit.available()
    method = credit.get("event_both", lam=0.5)
    assert method.requires == {"solo", "no_solver"}
    groups = [EpisodeGroup.from_rewards([1, -1, 1], solo=[-1, -1], no_solver=[-1, 1, 1]),  # b = -1
              EpisodeGroup.from_rewards([1, -1], solo=[1, 1], no_solver=[1, 1])]  # b = +1
    r = method(groups)
    # Thinker: helped where R > 0 and b < 0, hurt where R < 0 and b > 0
    np.testing.assert_allclose(r[T], [1.5, -1, 1.5, 1, -1.5])
    # Solver: helped where R > 0 and R_¬S < 0, hurt where R < 0 and R_¬S > 0
    np.testing.assert_allclose(r[S], [1.5, -1.5, 1, 1, -1.5])
    # loading the same file again reuses the module (no "already registered" error)
    assert credit.load_plugin(str(EXAMPLE)) is credit.load_plugin(str(EXAMPLE))


def test_plugin_errors_are_named(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"nope\.py"):
        credit.load_plugin(str(tmp_path / "nope.py"))
    with pytest.raises(ModuleNotFoundError, match="no_such_plugin_module"):
        credit.load_plugin("no_such_plugin_module")
    cfg = preset("tiny-arith")
    cfg.plugins = [str(tmp_path / "missing.py")]
    with pytest.raises(ConfigError, match=r"plugins: cannot load .*missing\.py"):
        cfg.validate()
    bad = tmp_path / "bad.py"
    bad.write_text("raise ImportError('broken plugin')\n")
    with pytest.raises(ImportError, match="broken plugin"):
        credit.load_plugin(str(bad))
    assert not [m for m in sys.modules if m.startswith("thinksolve_plugin_bad_")]  # no half-imported module left


def test_plugins_override_and_config_round_trip():
    _forget_plugins()  # as in a new process
    cfg = apply_overrides(preset("tiny-arith"), [f"plugins={EXAMPLE}", "credit.name=event_both"])
    with pytest.raises(ConfigError, match=r"credit.name='event_both' is invalid: .*are not loaded yet"):
        cfg.validate()  # validate() imports nothing
    cfg.load_plugins()
    cfg = cfg.validate()
    assert cfg.plugins == [str(EXAMPLE)] and cfg.credit.name == "event_both"
    assert type(cfg).from_dict(json.loads(cfg.to_json())).validate().plugins == [str(EXAMPLE)]


def _forget_plugins():
    for name in [m for m in sys.modules if m.startswith("thinksolve_plugin_")]:
        del sys.modules[name]
    credit.unregister("event_both")


def test_train_cli_runs_a_plugin_method_and_resume_finds_it_again(tmp_path, capsys, tiny_warm_start):
    out = tmp_path / "run"
    rc = cli_main(["train", "--plugin", str(EXAMPLE), "--credit", "event_both", "--steps", "1", "--out", str(out),
                   "tensorboard=false", "rollout.problems_per_step=2", "rollout.group_size=2", "rollout.solo_samples=1",
                   "rollout.thinker_max_new_tokens=8", "rollout.solver_max_new_tokens=8", *tiny_warm_start])
    assert rc == 0, capsys.readouterr().err
    assert json.loads((out / "config.json").read_text())["plugins"] == [str(EXAMPLE)]
    row = json.loads((out / "metrics.jsonl").read_text().splitlines()[0])
    assert row["generations"]["solo"] == 2 and row["generations"]["solver"] == 4
    _forget_plugins()  # as in a new process: the method is not registered
    assert "event_both" not in credit.available()
    assert cli_main(["train", "--resume", "--out", str(out), "--steps", "2"]) == 0, capsys.readouterr().err
    assert "event_both" in credit.available()  # the recorded plugin was loaded again
    rows = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2] and rows[1]["generations"]["solo"] == 2


def _bench(tmp_path, runs, *extra, cli=False):
    args = ["--preset", "tiny-arith", "--plugin", str(EXAMPLE), "--methods", "event_both", "shared-tree",
            "--optimizers", "reinforce++", "--seeds", "0",
            "--steps", "2", "--eval-every", "1", "--eval-data", "arith:n=8,difficulty=1,split=test",
            "--eval-samples", "1", "--workers", "1", "--name", "cmp", "--results", str(tmp_path / "results"),
            "--runs", str(runs), "rollout.problems_per_step=2", "rollout.group_size=4", "rollout.solo_samples=2",
            *extra]
    assert (cli_main(["bench", "credit", *args]) if cli else cc.main(args)) == 0
    return json.loads((tmp_path / "results" / "cmp.json").read_text())


@pytest.mark.slow
def test_registered_method_runs_through_the_comparison_and_reruns_reproduce(tmp_path, capsys, tiny_warm_start):
    first = _bench(tmp_path, tmp_path / "runs1", *tiny_warm_start)
    # shared is always added as the reference
    assert [r["method"] for r in first["rows"]] == ["shared", "event_both", "shared-tree"]
    assert first["equal_generations"]["rows"][1]["method"] == "event_both"
    assert [r["collection"] for r in first["rows"]] == ["flat", "flat", "tree 2x2"]
    runs = {r["method"]: r for r in first["runs"]}
    # every run starts from its seed's one warm-start evaluation
    assert runs["shared"]["curve"][0] == runs["event_both"]["curve"][0] == runs["shared-tree"]["curve"][0]
    for r in runs.values():
        assert [p["step"] for p in r["curve"]] == [0, 1, 2]
        assert r["final"]["joint_accuracy"] - r["final"]["solo_accuracy"] == pytest.approx(r["final"]["collaboration"])
        assert r["final"]["help_rate"] - r["final"]["hurt_rate"] == pytest.approx(r["final"]["collaboration"])
    # generations per step: shared 8 joint answers; event_both adds 4 Thinker-removed answers
    assert runs["shared"]["solver_generations_per_step"] == 8
    assert runs["event_both"]["solver_generations_per_step"] == 12
    # the tree control: 2 thoughts x 2 answers per problem, the same 8 joint answers as shared
    assert runs["shared-tree"]["solver_generations_per_step"] == 8
    assert first["rows"][2]["Solver gens/step"] == "8"
    assert first["primary_metric"] == cc.PRIMARY and "Primary metric" in (tmp_path / "results" / "cmp.md").read_text()
    assert "minimum detectable difference" in first["notes"]
    # equal generations: the budget is shared's final count, which event_both exceeds after step 1
    assert first["generation_budget"] == 16
    assert first["equal_generations"]["rows"][1]["step"] == "1"
    assert (tmp_path / "results" / "cmp.md").read_text().count("event_both") >= 2
    assert (tmp_path / "results" / "cmp_curve.png").stat().st_size > 1000
    assert "reinforce++" in first["command"] and first["versions"]["torch"]

    # a rerun in a fresh directory reproduces every evaluation exactly
    second = _bench(tmp_path, tmp_path / "runs2", *tiny_warm_start)
    assert [r["curve"] for r in second["runs"]] == [r["curve"] for r in first["runs"]]

    # a rerun in the same directory (through `thinksolve bench credit`) reuses the stored runs
    capsys.readouterr()
    third = _bench(tmp_path, tmp_path / "runs1", *tiny_warm_start, cli=True)
    assert third["command"].startswith("python benchmarks/credit_comparison.py --preset tiny-arith --plugin")
    assert "reusing 4 stored run(s); 0 to run" in capsys.readouterr().out
    assert [r["curve"] for r in third["runs"]] == [r["curve"] for r in first["runs"]]


def test_stored_runs_are_redone_when_settings_change(tmp_path):
    args = cc.build_parser().parse_args(["--methods", "shared", "--optimizers", "grpo", "--seeds", "0", "--steps", "3",
                                         "--runs", str(tmp_path)])
    start, task = cc.plan(args)  # the seed's warm-start evaluation, then the run
    path = Path(task["path"])
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps({"key": task["key"], "final": {}}))
    assert cc.cached(task) is not None
    args.steps = 4
    assert cc.cached(cc.plan(args)[1]) is None  # another step count: another key
    assert cc.plan(args)[0]["key"] == start["key"]  # but the same warm-start evaluation
    # a rating setting reruns the methods that rate, not the others
    args.methods = ["shared", "sepo"]
    before = [t["key"] for t in cc.plan(args)[1:]]
    args.overrides = ["rollout.rating_max_new_tokens=17"]
    after = [t["key"] for t in cc.plan(args)[1:]]
    assert before[0] == after[0] and before[1] != after[1]
    path.write_text("{truncated")
    assert cc.cached(task) is None  # a damaged record is rerun, not trusted


def test_unknown_method_is_named(tmp_path, capsys):
    assert cc.main(["--methods", "coma", "--runs", str(tmp_path), "--results", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "unknown method 'coma'" in err and "--plugin" in err


def test_at_budget_picks_the_last_evaluation_within_the_budget():
    record = {"curve": [{"step": 0, "solver_generations": 0}, {"step": 50, "solver_generations": 4800},
                        {"step": 100, "solver_generations": 9600}, {"step": 150, "solver_generations": 14400}]}
    assert cc.at_budget(record, 9600)["step"] == 100
    assert cc.at_budget(record, 9599)["step"] == 50


def test_readme_shows_the_example_plugin_verbatim():
    """The README's registering example is the code that the tests and the benchmark run."""
    import inspect

    module = credit.load_plugin(str(EXAMPLE))
    readme = (ROOT / "README.md").read_text()
    assert inspect.getsource(module.event_both) in readme
    assert "--plugin examples/event_both.py" in readme


def test_tree_methods_keep_the_solver_answers_per_problem():
    """A tree method spends the preset's n joint answers as n/K thoughts x K answers."""
    assert cc.method_spec("tree") == ("tree", {}, "tree")
    assert cc.method_spec("ccpo-value") == ("ccpo", {"variant": "value"}, "tree")
    assert cc.method_spec("shared-tree") == ("shared", {}, "tree")
    assert cc.method_spec("sepo@tree") == ("sepo", {}, "tree")
    assert cc.method_spec("ccpo-event") == ("ccpo", {"variant": "event"}, "flat")
    kw = dict(steps=1, eval_data=None, eval_samples=None, plugins=[], out="x", overrides=[])
    flat = cc.run_config("tiny-brief", "shared", "gspo", 0, **kw)
    assert (flat.rollout.group_size, flat.rollout.answers_per_thought) == (8, 1)
    for method in ("tree", "ccpo-value", "shared-tree", "difference@tree"):
        cfg = cc.run_config("tiny-brief", method, "gspo", 0, answers_per_thought=4, **kw)
        assert (cfg.rollout.group_size, cfg.rollout.answers_per_thought) == (2, 4), method
    assert cc.run_config("tiny-brief", "shared-tree", "grpo", 0, **kw).credit.name == "shared"
    with pytest.raises(ValueError, match="group_size=8 is not a multiple of --answers-per-thought=3"):
        cc.run_config("tiny-brief", "tree", "gspo", 0, answers_per_thought=3, **kw)
    with pytest.raises(ValueError, match="integer >= 2"):
        cc.run_config("tiny-brief", "tree", "gspo", 0, answers_per_thought=1, **kw)
    with pytest.raises(ValueError, match="unknown method 'coma@tree'"):
        cc.method_spec("coma@tree")


def test_plan_puts_warm_starts_first_then_the_lead_optimizers_seed_by_seed(tmp_path):
    args = cc.build_parser().parse_args(["--methods", "shared", "tree", "--optimizers", "gspo", "grpo", "reinforce++",
                                         "--seeds", "0", "1", "--steps", "2", "--runs", str(tmp_path)])
    tasks = cc.plan(args)
    assert [t.get("kind") for t in tasks[:2]] == ["start", "start"]
    order = [(t["optimizer"], t["seed"], t["method"]) for t in tasks[2:]]
    assert order[:8] == [(o, s, m) for s in (0, 1) for o in ("gspo", "grpo") for m in ("shared", "tree")]
    assert order[8:] == [("reinforce++", s, m) for s in (0, 1) for m in ("shared", "tree")]
    # --limit keeps a prefix of that order (a grid stopped early), the warm starts always
    args.limit = 9
    assert [(t["optimizer"], t["seed"], t["method"]) for t in cc.plan(args)[2:]] == order[:9]
    args.limit = None
    # the warm-start evaluation does not depend on the method or the optimizer
    assert len({t["key"] for t in tasks[:2]}) == 2
    a = cc.run_config("tiny-brief", "tree", "reinforce++", 1, steps=2, eval_data=None, eval_samples=None, plugins=[],
                      out="a", overrides=[])
    assert cc.start_key(a) == tasks[1]["key"]
    # an override that changes the evaluation changes it
    args.overrides = ["eval_samples=3"]
    assert cc.plan(args)[0]["key"] != tasks[0]["key"]


def test_paired_difference_interval_and_evaluation_standard_error():
    from algorithms.evaluation import paired_interval

    d = cc.paired_diff([0.02, 0.04, 0.06], [0.01, 0.02, 0.02])
    assert d["mean"] == pytest.approx(0.04)
    se = 0.02 / np.sqrt(3)  # sd of (2, 4, 6) points is 2 points
    assert d["se"] == pytest.approx(se)
    assert d["ci95"] == pytest.approx([0.04 - 4.303 * se, 0.04 + 4.303 * se])
    assert d["se_eval"] == pytest.approx(np.sqrt(0.01 ** 2 + 2 * 0.02 ** 2) / 3)
    assert d["se_eval_seed"] == pytest.approx(np.sqrt((0.01 ** 2 + 2 * 0.02 ** 2) / 3))
    assert d["mde"] == pytest.approx(2.8 * se)
    assert cc.t975(4) == 2.776 and cc.t975(1000) == pytest.approx(1.962, abs=1e-3)
    with pytest.raises(ValueError, match="df must be >= 1"):
        cc.t975(0)
    # the per-seed evaluation SE is the per-problem paired SE of the two final evaluations
    a = {"per_problem": {"joint": [1.0, 0.5, 0.25, 0.0]}}
    b = {"per_problem": {"joint": [0.5, 0.5, 0.0, 0.0]}}
    assert cc._eval_se(a, b) == pytest.approx(paired_interval([1.0, 0.5, 0.25, 0.0], [0.5, 0.5, 0.0, 0.0])["se"])
    # the power line says whether the seeds make the SE larger than the evaluation's
    p = cc.power_summary([{**d, "optimizer": "gspo", "method": "x", "view": "equal steps"}])
    assert p["se"] > p["se_eval"] and "makes the total SE larger" in cc.power_line(p)
    assert p["mde_eval_only"] == pytest.approx(2.8 * d["se_eval"])


#: A three-role run in seconds: a small warm start of the relay chain, one problem a step.
RELAY_SMALL = ["warm_start.steps=3", "warm_start.batch_size=4", "warm_start.data=arith:n=40,difficulty=1,relay=1",
               "rollout.problems_per_step=1", "rollout.group_size=8", "rollout.solo_samples=1", "samples_every=0"]
CHAIN = ("planner_0", "relay_0", "solver_0")


def test_chain_presets_get_chain_methods_and_two_role_methods_are_refused(tmp_path, capsys):
    args = cc.build_parser().parse_args(["--preset", "tiny-relay", "--runs", str(tmp_path)])
    cc.resolve_defaults(args)
    assert args.methods == cc.DEFAULT_CHAIN_METHODS and args.optimizers == ["dr_grpo"]  # the preset's own optimizer
    args = cc.build_parser().parse_args(["--runs", str(tmp_path)])
    cc.resolve_defaults(args)  # two roles: as before
    assert args.methods == cc.DEFAULT_METHODS and args.optimizers == cc.DEFAULT_OPTIMIZERS
    for method in ("sepo", "ccpo-normalized"):
        assert cc.main(["--preset", "tiny-relay", "--methods", method, "--runs", str(tmp_path), "--dry-run"]) == 2
        err = capsys.readouterr().err
        assert f"{method} is not defined for a chain of 3 roles" in err and "shapley" in err
    # a tree collection branches K ways at every position and keeps the solver's n answers per problem
    kw = dict(steps=1, eval_data=None, eval_samples=None, plugins=[], out="x", overrides=[])
    cfg = cc.run_config("tiny-relay", "tree", "dr_grpo", 0, **kw)
    assert (cfg.rollout.group_size, cfg.rollout.answers_per_thought) == (2, 2)
    assert cc.collection_of(cfg.to_dict()) == "tree 2x2x2"
    with pytest.raises(ValueError, match=r"group_size=8 is not a multiple of K\^\(N-1\) = 3\^2 = 9"):
        cc.run_config("tiny-relay", "tree", "dr_grpo", 0, answers_per_thought=3, **kw)
    from algorithms.config import preset as get_preset

    assert cc.run_config("tiny-relay", "shared", "dr_grpo", 0, **kw).optim == get_preset("tiny-relay").optim
    # the chain's budget summed: the solver's joint answers and the replays in which it answers
    budget = {"generate_calls": {}, "planner_0": {"generations": 8}, "relay_0": {"generations": 8},
              "solver_0": {"generations": 8, "verifier_calls": 8},
              "without:relay_0": {"generations": 8, "verifier_calls": 8, "by_role": {"solver_0": 8}},
              "without:solver_0": {"generations": 0, "verifier_calls": 8, "by_role": {}},
              "only:relay_0": {"generations": 2, "verifier_calls": 2, "by_role": {"relay_0": 2}}}
    assert cc.chain_budget(budget, CHAIN) == {"last": 16, "replays": 18, "replay_generations": 10,
                                              "by_role": {"planner_0": 8, "relay_0": 10, "solver_0": 16}}


@pytest.mark.slow
def test_the_three_role_comparison_runs_and_tabulates_each_role(tmp_path):
    """A tiny grid on tiny-relay (3 methods x 1 seed x 2 steps): the chain's columns come from the runs."""
    args = ["--preset", "tiny-relay", "--methods", "shapley", "tree", "--seeds", "0", "--steps", "2",
            "--eval-every", "1", "--eval-data", "arith:n=6,difficulty=1,split=test,relay=1", "--eval-samples", "1",
            "--workers", "1", "--name", "relay", "--results", str(tmp_path / "results"), "--runs", str(tmp_path / "runs"),
            *RELAY_SMALL]
    assert cc.main(args) == 0
    out = json.loads((tmp_path / "results" / "relay.json").read_text())
    assert [r["method"] for r in out["rows"]] == ["shared", "shapley", "tree"]
    assert [r["optimizer"] for r in out["rows"]] == ["dr_grpo"] * 3
    for col in ("team %", "without planner %", "without relay %", "without solver %", "relay contribution (pts)",
                "solver_0 gens/step", "replays/step", "replay gens/step", "vs shared (pts) [95% CI]", "SE eval", "MDE",
                "adv_corr planner/relay/solver", "run s"):
        assert col in out["columns"], col
    runs = {r["method"]: r for r in out["runs"]}
    assert runs["shared"]["curve"][0] == runs["shapley"]["curve"][0] == runs["tree"]["curve"][0]  # one warm start
    for r in runs.values():
        assert [p["step"] for p in r["curve"]] == [0, 1, 2] and r["roles"] == list(CHAIN)
        f = r["final"]
        assert set(f["removed"]) == set(f["contribution"]) == set(CHAIN)
        for role in CHAIN:
            assert f["contribution"][role] == pytest.approx(f["joint_accuracy"] - f["removed"][role])
            assert f["removed"][role] == pytest.approx(np.mean(f["per_problem"][f"without_{role}"]))
        assert f["removed"]["solver_0"] == 0.0  # without the solver nobody boxes an answer
    # the solver's generations per step: 1 problem x 8 joint answers; shapley adds its replays (without the
    # relay: one per planner text; without the planner and the solver alone: solo_samples=1 per problem)
    assert runs["shared"]["solver_generations_per_step"] == 8 and runs["shared"]["replays_per_step"] == 0
    assert runs["tree"]["solver_generations_per_step"] == 8 and runs["tree"]["collection"] == "tree 2x2x2"
    assert runs["tree"]["generations_per_step_by_role"] == {"planner_0": 2, "relay_0": 4, "solver_0": 8}
    assert runs["shapley"]["solver_generations_per_step"] == 8 + 8 + 1 + 1
    # replays: without the solver / the relay / all but the planner one per prefix (8 each), the others 1
    assert runs["shapley"]["replays_per_step"] == 27 and runs["shapley"]["replay_generations_per_step"] == 12
    assert runs["shapley"]["generations_per_step_by_role"] == {"planner_0": 8, "relay_0": 10, "solver_0": 18}
    row = {r["method"]: r for r in out["rows"]}
    assert row["shapley"]["solver_0 gens/step"] == "18" and row["shapley"]["replays/step"] == "27"
    assert row["tree"]["team %"] == f"{runs['tree']['final']['joint_accuracy'] * 100:.1f} ± 0.0"
    d = [x for x in out["differences"] if x["method"] == "tree" and x["view"] == "equal steps"][0]
    assert d["mean"] == pytest.approx(runs["tree"]["final"]["joint_accuracy"] - runs["shared"]["final"]["joint_accuracy"])
    # equal solver generations: shared's final budget (16); shapley spends 18 a step, so it is read at step 0
    assert out["generation_budget"] == 16
    gen = {r["method"]: r for r in out["equal_generations"]["rows"]}
    assert gen["shapley"]["step"] == "0" and gen["tree"]["step"] == "2"
    md = (tmp_path / "results" / "relay.md").read_text()
    assert "Equal solver_0 generations" in md and "planner_0 -> relay_0 -> solver_0" in md
