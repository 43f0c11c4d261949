import json
import sys

import pytest

from thinksolve_env import Problem, ProblemFormatError, arith_problems, load_problems
from thinksolve_env.problems import parse_arith_spec


def test_math500_loads_with_ids_and_meta(math500):
    assert len(math500) == 500
    p = math500[0]
    assert p.id == "math500-0" and p.answer and p.problem
    assert "solution" in p.meta and "level" in p.meta


def test_limit_and_seeded_shuffle_are_deterministic(math500_path):
    a = load_problems(math500_path, limit=10, seed=3)
    b = load_problems(math500_path, limit=10, seed=3)
    c = load_problems(math500_path, limit=10, seed=4)
    assert [p.id for p in a] == [p.id for p in b]
    assert [p.id for p in a] != [p.id for p in c]
    assert [p.id for p in load_problems(math500_path, limit=3)] == ["math500-0", "math500-1", "math500-2"]


def test_question_field_and_numeric_answer(tmp_path):
    f = tmp_path / "q.jsonl"
    f.write_text(json.dumps({"question": "1+1?", "answer": 2}) + "\n\n"
                 + json.dumps({"id": "x", "problem": "2+2?", "answer": "4"}) + "\n")
    ps = load_problems(f)
    assert [(p.id, p.problem, p.answer) for p in ps] == [("q-0", "1+1?", "2"), ("x", "2+2?", "4")]


def test_bad_json_line_names_file_and_line(tmp_path):
    f = tmp_path / "bad.jsonl"
    f.write_text('{"problem": "a", "answer": "1"}\n{not json}\n')
    with pytest.raises(ProblemFormatError, match=r"bad\.jsonl:2: not valid JSON"):
        load_problems(f)


@pytest.mark.parametrize("record, field", [({"answer": "1"}, "'problem'"), ({"problem": "x"}, "'answer'")])
def test_missing_field_is_named(tmp_path, record, field):
    f = tmp_path / "m.jsonl"
    f.write_text(json.dumps(record) + "\n")
    with pytest.raises(ProblemFormatError, match=f"m.jsonl:1: record has no {field}"):
        load_problems(f)


def test_empty_sources_are_errors(tmp_path):
    f = tmp_path / "empty.jsonl"
    f.write_text("\n")
    with pytest.raises(ValueError, match="empty"):
        load_problems(f)
    with pytest.raises(ValueError, match="empty"):
        load_problems([])
    with pytest.raises(FileNotFoundError, match="no such file"):
        load_problems(str(tmp_path / "nope.jsonl"))


def test_parquet(tmp_path):
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    f = tmp_path / "d.parquet"
    pq.write_table(pa.table({"problem": ["3*3?", "4*4?"], "answer": ["9", "16"]}), f)
    ps = load_problems(f)
    assert [(p.problem, p.answer) for p in ps] == [("3*3?", "9"), ("4*4?", "16")]


def test_hf_name_without_datasets_says_how_to_install(monkeypatch):
    # datasets is installed with the dev extra (TRL needs it): hide it, as on a machine without it
    monkeypatch.setitem(sys.modules, "datasets", None)
    with pytest.raises(ImportError, match=r"thinksolve\[datasets\]"):
        load_problems("hf:openai/gsm8k:test")


def test_arith_is_deterministic_multistep_and_correct():
    a = load_problems("arith:n=50,difficulty=3", seed=1)
    b = load_problems("arith:n=50,difficulty=3", seed=1)
    assert [(p.problem, p.answer) for p in a] == [(p.problem, p.answer) for p in b]
    assert [p.problem for p in load_problems("arith:n=50,difficulty=3", seed=2)] != [p.problem for p in a]
    for p in a:
        steps = p.meta["steps"]
        assert len(steps) == 3
        # The chain of intermediate results ends in the answer, and each step is right.
        for s in steps:
            lhs, rhs = s.split(" = ")
            x, op, y = lhs.split(" ")
            x, y = int(x), int(y)
            assert int(rhs) == {"+": x + y, "-": x - y, "*": x * y}[op]
        assert steps[-1].endswith(f"= {p.answer}")


def test_arith_test_split_is_disjoint_from_train():
    train = {p.problem for p in arith_problems(300, difficulty=1, seed=0, split="train")}
    test = [p.problem for p in arith_problems(100, difficulty=1, seed=0, split="test")]
    assert not train.intersection(test)


@pytest.mark.parametrize("spec, msg", [
    ("arith:difficulty=9", "difficulty must be 1..5"),
    ("arith:n=0", "n must be >= 1"),
    ("arith:colour=3", "unknown key 'colour'"),
    ("arith:n=ten", "n must be an integer"),
    ("arith:split=dev", "split must be"),
])
def test_arith_spec_errors(spec, msg):
    with pytest.raises(ValueError, match=msg):
        parse_arith_spec(spec)


def test_problem_dataclass_validates():
    assert Problem("a", "What?", 3).answer == "3"
    with pytest.raises(ProblemFormatError, match="'answer' must be"):
        Problem("a", "What?", "")


@pytest.mark.parametrize("line, where", [
    ('{"problem": "x", "answer": "1"', "Expecting ',' delimiter at the end of the line"),  # the record is cut off
    ('{"problem": "x",, "answer": "1"}', "at column 17"),  # the second comma, counted on the line itself
    ('{"problem": "x", "answer": "1"} junk', "Extra data at column 33"),
])
def test_bad_json_line_names_the_column_on_its_own_line(tmp_path, line, where):
    f = tmp_path / "p.jsonl"
    f.write_text('\ufeff{"problem": "y", "answer": "2"}\n' + line + "\n")  # a byte-order mark is no error
    with pytest.raises(ProblemFormatError) as e:
        load_problems(f)
    assert f"{f}:2:" in str(e.value) and where in str(e.value)


def test_over_long_problems_and_answers_are_refused_by_name(tmp_path):
    from thinksolve_env import Problem, ThinkSolveEnv
    from thinksolve_env.problems import MAX_PROBLEM_CHARS

    f = tmp_path / "p.jsonl"
    f.write_text(json.dumps({"id": "huge", "problem": "1 + " * 300_000 + "1", "answer": "300001"}) + "\n")
    with pytest.raises(ProblemFormatError, match=r"problem 'huge' is 1,200,001 characters long, over the limit of 16,000"):
        load_problems(f)
    assert len(load_problems(f, max_chars=0)[0].problem) == 1_200_001  # the documented way to lift it
    assert len(load_problems(f, max_chars=2_000_000)) == 1
    with pytest.raises(ProblemFormatError, match="reference answer of 3,000 characters"):
        load_problems([{"id": "a", "problem": "x", "answer": "9" * 3000}])
    long = Problem("long", "x" * (MAX_PROBLEM_CHARS + 1), "1")
    with pytest.raises(ProblemFormatError, match="ThinkSolveEnv: problem 'long' .* max_problem_chars=0"):
        ThinkSolveEnv([long])
    ThinkSolveEnv([long], max_problem_chars=0).close()
    ThinkSolveEnv([Problem("ok", "x" * MAX_PROBLEM_CHARS, "1")]).close()  # at the limit: accepted
