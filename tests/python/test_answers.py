import math

import pytest

import thought_anchors as ta
from conftest import load_json


def test_reference_answers_agree_with_is_correct(reference_dir):
    base = load_json(reference_dir / "base_solution.json")
    problem = load_json(reference_dir / "problem.json")
    assert ta.answers_equivalent(base["answer"], problem["gt_answer"]) == base["is_correct"]
    assert ta.normalize_answer(ta.extract_boxed(base["solution"])) == ta.normalize_answer(base["answer"])
    assert ta.answers_equivalent(ta.extract_boxed(problem["gt_solution"]), problem["gt_answer"])


@pytest.mark.parametrize(
    "a, b, equal",
    [
        ("\\frac{1}{2}", "0.5", True),
        ("\\dfrac{3}{4}", "3/4", True),
        ("2.50", "2.5", True),
        ("1{,}000", "1000", True),
        ("10\\%", "10", True),
        ("-3", "-3.0", True),
        ("2\\sqrt{3}", "\\sqrt{12}", True),
        ("5", "6", False),
        ("x+1", "1+x", False),  # no symbolic algebra: different strings, not numbers
    ],
)
def test_equivalence(a, b, equal):
    assert ta.answers_equivalent(a, b) is equal


def test_extract_boxed_edge_cases():
    assert ta.extract_boxed("\\boxed{\\frac{1}{2}}") == "\\frac{1}{2}"
    assert ta.extract_boxed("\\boxed{} then \\boxed{7}") == "7"
    assert ta.extract_all_boxed("\\boxed{1} \\boxed{2}") == ["1", "2"]
    assert ta.extract_boxed("no box here") is None
    assert ta.extract_boxed("\\boxed{unterminated") is None
    assert ta.extract_boxed("{" * 100000) is None  # no crash, no hang


def test_distribution_and_kl_against_formula():
    p = ta.AnswerDistribution.from_answers(["1", "1", "2", "", "\\frac{1}{2}"])
    q = ta.AnswerDistribution.from_answers(["1", "3", "3"])
    assert p.total == 4  # the empty answer is not counted
    alpha = 1e-3
    support = set(p.counts) | set(q.counts)
    pp = {a: (p.count(a) + alpha) / (p.total + alpha * len(support)) for a in support}
    qq = {a: (q.count(a) + alpha) / (q.total + alpha * len(support)) for a in support}
    expected = sum(pp[a] * math.log(pp[a] / qq[a]) for a in support)
    assert ta.kl_divergence(p, q, alpha=alpha) == pytest.approx(expected, rel=1e-12)
    assert ta.kl_divergence(p, p) == 0.0
    assert ta.kl_divergence(p, ta.AnswerDistribution()) == 0.0


def test_distribution_total_that_would_wrap_is_an_error():
    d = ta.AnswerDistribution()
    d.add("1", 2**64 - 1)  # the largest total is still a total
    with pytest.raises(ta.Error, match="AnswerDistribution::add: adding 1 to a total of 18446744073709551615 overflows"):
        d.add("2", 1)  # used to wrap the total to 0
    assert d.total == 2**64 - 1 and d.counts == {"1": 2**64 - 1}
    other = ta.AnswerDistribution.from_answers(["1"])
    with pytest.raises(ta.Error, match="AnswerDistribution::merge"):
        other.merge(d)
    assert other.total == 1
