"""Seeded generator of small multi-step arithmetic word problems with tagged chains of thought.

Every example is a problem (2-4 arithmetic steps on small numbers, some needing a recalled fact such
as "a dozen is 12"), its gold answer, and a chain of thought whose sentences carry the function tags
of the Thought Anchors taxonomy (see docs/design.md §3):

    problem_setup, plan_generation, fact_retrieval, active_computation, result_consolidation,
    self_checking, uncertainty_management (an occasional wrong step and its "Wait, ..." correction),
    final_answer_emission.

Each sentence ends with ".", so `thought_anchors.split_sentences` recovers exactly the generated
sentences. `format_example` renders an example in the reference raw prompt format:

    Solve this math problem step by step. You MUST put your final answer in \\boxed{}. Problem: {p} Solution: \\n<think>\\n{cot}\\n</think>\\n\\nThe answer is \\boxed{N}.

Streams are reproducible: `training_examples(seed)` and `heldout_problems(n, seed)` draw from
disjoint seed streams, and the training stream skips every problem text of the first
HELDOUT_RESERVED held-out problems, so no evaluation problem is ever trained on.

Command line:
    python corpus.py --show 3                 # print three training examples with their tags
    python corpus.py --heldout 100 --out F    # write [{"problem", "gt_answer"}, ...] to F (JSON)
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import random
from typing import Callable, Iterator

TAGS = (
    "problem_setup",
    "plan_generation",
    "fact_retrieval",
    "active_computation",
    "result_consolidation",
    "uncertainty_management",
    "self_checking",
    "final_answer_emission",
)

PROMPT_TEMPLATE = (
    "Solve this math problem step by step. You MUST put your final answer in \\boxed{{}}. "
    "Problem: {problem} Solution: \n<think>\n"
)
COMPLETION_TEMPLATE = "{cot}\n</think>\n\nThe answer is \\boxed{{{answer}}}."
EOS = "<|endoftext|>"

# Seed streams: training seed s uses Random(("train", s)); held-out seed s uses Random(("heldout", s)).
HELDOUT_RESERVED = 2000

NAMES = ("Tom", "Mia", "Sam", "Ana", "Leo", "Zoe", "Ben", "Lily", "Max", "Emma", "Noah", "Ava", "Jack", "Nina",
         "Omar", "Ruby", "Ivan", "Sara", "Paul", "Kim")


@dataclasses.dataclass
class Example:
    problem: str
    answer: int
    sentences: list[tuple[str, str]]  # (tag, text), in order
    paragraph_breaks: set[int] = dataclasses.field(default_factory=set)  # "\n\n" before these indices

    @property
    def cot(self) -> str:
        parts = []
        for i, (_, text) in enumerate(self.sentences):
            if i:
                parts.append("\n\n" if i in self.paragraph_breaks else " ")
            parts.append(text)
        return "".join(parts)

    @property
    def tags(self) -> list[str]:
        return [tag for tag, _ in self.sentences]

    def prompt(self) -> str:
        return PROMPT_TEMPLATE.format(problem=self.problem)

    def completion(self) -> str:
        return COMPLETION_TEMPLATE.format(cot=self.cot, answer=self.answer)

    def text(self) -> str:
        """The whole training text, prompt + completion + EOS."""
        return self.prompt() + self.completion() + EOS

    def problem_json(self) -> dict:
        return {"problem": self.problem, "gt_answer": str(self.answer)}


class _Trace:
    """Builds a chain of thought: sentences with tags, computations, checks and mistakes."""

    def __init__(self, rng: random.Random, mistake_rate: float):
        self.rng = rng
        self.sentences: list[tuple[str, str]] = []
        self.breaks: set[int] = set()
        self.ops: list[tuple[int, str, int, int]] = []  # (a, op, b, result)
        self.mistake_left = rng.random() < mistake_rate

    def pick(self, options):
        return self.rng.choice(options)

    def add(self, tag: str, text: str):
        assert tag in TAGS, tag
        text = text[0].upper() + text[1:]
        self.sentences.append((tag, text))

    def paragraph(self):
        if self.sentences and self.rng.random() < 0.5:
            self.breaks.add(len(self.sentences))

    def fact(self, options):
        self.add("fact_retrieval", self.pick(options))

    def compute(self, a: int, op: str, b: int, unit: str = "") -> int:
        result = {"+": a + b, "-": a - b, "*": a * b, "/": a // b}[op]
        if op == "/":
            assert a % b == 0
        self.ops.append((a, op, b, result))
        equation = f"{a} {op} {b} = {result}"
        if self.mistake_left and self.rng.random() < 0.5:
            self.mistake_left = False
            wrong = result + self.pick((-2, -1, 1, 2, 10, -10))
            if wrong < 0 or wrong == result:
                wrong = result + 1
            self.add("active_computation", f"{a} {op} {b} = {wrong}.")
            self.add("uncertainty_management", self.pick((
                f"Wait, that is not right, {equation}.",
                f"Wait, let me redo that: {equation}.",
                f"Hmm, wait, I made a mistake there, {equation}.",
                f"Wait, {a} {op} {b} is not {wrong}, it is {result}.",
            )))
            return result
        self.add("active_computation", self.pick((
            f"{equation}.",
            f"{equation}.",
            f"That gives {equation}.",
            f"So {equation}.",
            f"{equation}{' ' + unit if unit else ''}.",
        )))
        return result

    def check(self):
        a, op, b, result = self.rng.choice(self.ops)
        inverse = {"+": (result, "-", b, a), "-": (result, "+", b, a), "*": (result, "/", b, a),
                   "/": (result, "*", b, a)}[op]
        x, iop, y, z = inverse
        self.add("self_checking", self.pick((
            f"Let me check: {x} {iop} {y} = {z}, which matches.",
            f"Let me double-check: {x} {iop} {y} = {z}, so that is right.",
            f"To verify, {x} {iop} {y} = {z}, which is correct.",
            f"Checking the step again, {x} {iop} {y} = {z}, good.",
        )))


def _opening(t: _Trace, restatement: str, question: str):
    t.add("problem_setup", t.pick(("Okay, so ", "Alright, so ", "Let me restate the problem: ", "So, ")) + restatement)
    t.add("problem_setup", t.pick((f"We need to find {question}.", f"The question asks for {question}.",
                                   f"I need to figure out {question}.")))
    t.paragraph()


def _closing(t: _Trace, answer: int, statement: str):
    t.paragraph()
    if t.rng.random() < 0.85:
        t.check()
    t.add("final_answer_emission", t.pick((f"So the final answer is {answer}.", f"Therefore, the answer is {answer}.",
                                           f"{statement}, so the answer is {answer}.")))


# --- problem families -------------------------------------------------------------------------
# Each returns (problem text, answer) and fills the trace.

def _apples(rng: random.Random, t: _Trace):
    name = rng.choice(NAMES)
    fruit = rng.choice(("apples", "oranges", "pears", "plums", "cookies", "candies"))
    share = rng.random() < 0.45
    if share:
        k = rng.randint(2, 5)
        q = rng.randint(2, 9)
        left = k * q
        a = rng.randint(3, 20)
        b = rng.randint(2, 15)
        c = a + b - left
        if c < 1:
            b += 1 - c
            c = 1
    else:
        a = rng.randint(3, 25)
        b = rng.randint(2, 15)
        c = rng.randint(1, a + b - 1)
    problem = f"{name} has {a} {fruit}. {name} buys {b} more and then eats {c}."
    if share:
        problem += f" Then {name} shares the rest equally among {k} friends."
        question = f"how many {fruit} each friend gets"
        problem += f" How many {fruit} does each friend get?"
    else:
        question = f"how many {fruit} {name} has now"
        problem += f" How many {fruit} does {name} have now?"
    _opening(t, f"{name} starts with {a} {fruit}, buys {b} more and eats {c}.", question)
    plan = t.pick(("First I add the ones bought, then subtract the ones eaten",
                   f"The plan is to add {b} to {a} and then take away {c}"))
    t.add("plan_generation", plan + (", and finally divide by the number of friends." if share else "."))
    total = t.compute(a, "+", b, fruit)
    t.add("result_consolidation", t.pick((f"So after buying, {name} has {total} {fruit}.",
                                          f"That makes {total} {fruit} in total.")))
    rest = t.compute(total, "-", c, fruit)
    t.add("result_consolidation", t.pick((f"So {name} has {rest} {fruit} left.",
                                          f"After eating, there are {rest} {fruit}.")))
    if share:
        each = t.compute(rest, "/", k)
        t.add("result_consolidation", f"So each friend gets {each} {fruit}.")
        _closing(t, each, f"Each friend gets {each} {fruit}")
        return problem, each
    _closing(t, rest, f"{name} has {rest} {fruit} now")
    return problem, rest


def _dozens(rng: random.Random, t: _Trace):
    name = rng.choice(NAMES)
    item = rng.choice(("eggs", "muffins", "roses", "donuts", "pencils"))
    d = rng.randint(1, 4)
    total = 12 * d
    u = rng.randint(1, total - 2)
    extra = rng.randint(2, 12) if rng.random() < 0.5 else 0
    problem = f"{name} buys {d} dozen {item} and uses {u} of them."
    if extra:
        problem += f" Later {name} gets {extra} more {item}."
    problem += f" How many {item} does {name} have now?"
    _opening(t, f"{name} buys {d} dozen {item} and uses {u}" + (f", then gets {extra} more." if extra else "."),
             f"how many {item} are left")
    t.add("plan_generation", t.pick(("First I turn the dozens into a count, then subtract the ones used"
                                     + (" and add the new ones." if extra else "."),
                                     "I will count the items first and then work out what is left.")))
    t.fact(("A dozen is 12.", "There are 12 in a dozen.", "Recall that one dozen means 12."))
    n = t.compute(d, "*", 12, item)
    t.add("result_consolidation", t.pick((f"So {name} buys {n} {item}.", f"That is {n} {item} in total.")))
    left = t.compute(n, "-", u, item)
    t.add("result_consolidation", f"After using {u}, {left} {item} are left.")
    answer = left
    if extra:
        answer = t.compute(left, "+", extra, item)
        t.add("result_consolidation", f"With the {extra} new ones, {name} has {answer} {item}.")
    _closing(t, answer, f"{name} has {answer} {item} now")
    return problem, answer


def _weeks(rng: random.Random, t: _Trace):
    name = rng.choice(NAMES)
    thing, verb, base = rng.choice((("pages", "reads", "read"), ("laps", "swims", "swim"),
                                    ("words", "learns", "learn"), ("push-ups", "does", "do")))
    w = rng.randint(1, 2)
    p = rng.randint(2, 6)
    r = rng.randint(1, 15) if rng.random() < 0.6 else 0
    problem = f"{name} {verb} {p} {thing} every day for {w} week{'s' if w > 1 else ''}."
    if r:
        problem += f" Then {name} {verb} {r} more {thing}."
    problem += f" How many {thing} does {name} {base} in total?"
    _opening(t, f"{name} {verb} {p} {thing} a day for {w} week{'s' if w > 1 else ''}"
             + (f", plus {r} more." if r else "."), f"the total number of {thing}")
    t.add("plan_generation", t.pick(("First I find the number of days, then multiply by the daily amount"
                                     + (" and add the extra." if r else "."),
                                     "I need the days first, and then the total.")))
    t.fact(("A week has 7 days.", "There are 7 days in a week.", "Recall that one week is 7 days."))
    days = t.compute(w, "*", 7, "days")
    t.add("result_consolidation", f"So that is {days} days.")
    total = t.compute(days, "*", p, thing)
    t.add("result_consolidation", t.pick((f"So {name} {verb} {total} {thing} in those days.",
                                          f"That makes {total} {thing} over the {days} days.")))
    answer = total
    if r:
        answer = t.compute(total, "+", r, thing)
        t.add("result_consolidation", f"Adding the extra ones gives {answer} {thing}.")
    _closing(t, answer, f"The total is {answer} {thing}")
    return problem, answer


def _prices(rng: random.Random, t: _Trace):
    name = rng.choice(NAMES)
    item1, item2 = rng.sample(("pen", "notebook", "apple", "sandwich", "ticket", "ball", "cup", "toy car"), 2)
    n = rng.randint(2, 5)
    x = rng.randint(2, 9)
    y = rng.randint(1, 9)
    m = rng.randint(1, 3) if rng.random() < 0.5 else 1
    cost = n * x + m * y
    pay = next(v for v in (10, 20, 50, 100) if v > cost)
    plural2 = item2 + "s" if m > 1 else item2
    problem = (f"A {item1} costs {x} dollars and a {item2} costs {y} dollars. {name} buys {n} {item1}s and "
               f"{m if m > 1 else 'one'} {plural2}, and pays with a {pay} dollar bill. How much change does {name} get?")
    _opening(t, f"{n} {item1}s at {x} dollars each and {m if m > 1 else 'one'} {plural2} at {y} dollars, "
             f"paid with {pay} dollars.", "the change")
    t.add("plan_generation", t.pick(("First I find the total cost, then subtract it from the money paid.",
                                     "The plan is to add up the cost of everything and take it away from "
                                     f"{pay}.")))
    c1 = t.compute(n, "*", x, "dollars")
    t.add("result_consolidation", f"So the {item1}s cost {c1} dollars.")
    c2 = y
    if m > 1:
        c2 = t.compute(m, "*", y, "dollars")
        t.add("result_consolidation", f"So the {plural2} cost {c2} dollars.")
    total = t.compute(c1, "+", c2, "dollars")
    t.add("result_consolidation", t.pick((f"So the total cost is {total} dollars.",
                                          f"Everything costs {total} dollars together.")))
    change = t.compute(pay, "-", total, "dollars")
    _closing(t, change, f"{name} gets {change} dollars back")
    return problem, change


_LEGS = (("cows", 4, "A cow has 4 legs."), ("hens", 2, "A hen has 2 legs."), ("spiders", 8, "A spider has 8 legs."),
         ("ducks", 2, "A duck has 2 legs."), ("dogs", 4, "A dog has 4 legs."))
_WHEELS = (("bikes", 2, "A bike has 2 wheels."), ("cars", 4, "A car has 4 wheels."),
           ("tricycles", 3, "A tricycle has 3 wheels."))


def _legs(rng: random.Random, t: _Trace):
    if rng.random() < 0.5:
        (k1, v1, f1), (k2, v2, f2) = rng.sample(_LEGS, 2)
        part, place = "legs", rng.choice(("farm", "zoo", "yard"))
    else:
        (k1, v1, f1), (k2, v2, f2) = rng.sample(_WHEELS, 2)
        part, place = "wheels", rng.choice(("parking lot", "shop", "street"))
    a = rng.randint(2, 9)
    b = rng.randint(2, 9)
    problem = f"A {place} has {a} {k1} and {b} {k2}. How many {part} are there in total?"
    _opening(t, f"there are {a} {k1} and {b} {k2}.", f"the total number of {part}")
    t.add("plan_generation", t.pick((f"I will count the {part} of each kind and add them up.",
                                     f"First the {part} of the {k1}, then of the {k2}, then the sum.")))
    t.fact((f1,))
    p1 = t.compute(a, "*", v1, part)
    t.add("result_consolidation", f"So the {k1} have {p1} {part}.")
    t.fact((f2,))
    p2 = t.compute(b, "*", v2, part)
    t.add("result_consolidation", f"So the {k2} have {p2} {part}.")
    total = t.compute(p1, "+", p2, part)
    _closing(t, total, f"There are {total} {part} in total")
    return problem, total


FAMILIES: tuple[Callable, ...] = (_apples, _dozens, _weeks, _prices, _legs)


def make_example(rng: random.Random, mistake_rate: float = 0.3) -> Example:
    trace = _Trace(rng, mistake_rate)
    family = rng.choice(FAMILIES)
    problem, answer = family(rng, trace)
    return Example(problem=problem, answer=answer, sentences=trace.sentences, paragraph_breaks=trace.breaks)


def _stream(kind: str, seed: int) -> Iterator[Example]:
    rng = random.Random(f"{kind}:{seed}")
    while True:
        yield make_example(rng)


def heldout_examples(n: int, seed: int = 0) -> list[Example]:
    """The first n held-out examples (a seed stream disjoint from training)."""
    stream = _stream("heldout", seed)
    return [next(stream) for _ in range(n)]


def heldout_problems(n: int, seed: int = 0) -> list[dict]:
    """problem.json-style dicts {"problem", "gt_answer"} of the first n held-out problems."""
    return [e.problem_json() for e in heldout_examples(n, seed)]


def training_examples(seed: int = 0, heldout_seed: int = 0) -> Iterator[Example]:
    """An endless reproducible stream of training examples, never a reserved held-out problem."""
    reserved = {e.problem for e in heldout_examples(HELDOUT_RESERVED, heldout_seed)}
    for example in _stream("train", seed):
        if example.problem not in reserved:
            yield example


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--show", type=int, default=0, help="print this many training examples with tags")
    parser.add_argument("--heldout", type=int, default=0, help="write this many held-out problems")
    parser.add_argument("--out", help="JSON file for --heldout (default: stdout)")
    args = parser.parse_args()
    if args.show:
        stream = training_examples(args.seed)
        for _ in range(args.show):
            e = next(stream)
            print(e.text())
            for tag, text in e.sentences:
                print(f"  [{tag}] {text}")
            print()
    if args.heldout:
        data = json.dumps(heldout_problems(args.heldout, args.seed), indent=1)
        if args.out:
            with open(args.out, "w") as f:
                f.write(data + "\n")
        else:
            print(data)


if __name__ == "__main__":
    main()
