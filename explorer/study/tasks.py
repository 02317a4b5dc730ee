"""The three study tasks: what a trial shows, which answers are allowed, the keys that give
them, and how attention checks are scored. Pure Python (no torch, no database).

Answers are stored in *stimulus* terms, independent of which side a map was drawn on:

- ``rating``: 1..7, how similar the two maps look (1 = not at all, 7 = identical).
- ``choice``: 0 or 1, which candidate map (the trial's first or second) looks more like the
  reference. The page draws the candidates left/right in a counterbalanced order and converts
  the side that was pressed back to the candidate.
- ``same_different``: 1 = "same pattern", 0 = "different".
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Task", "TASKS", "get_task", "check_passed", "CHECK_RULES", "AnswerError"]


class AnswerError(ValueError):
    """An answer outside the task's range (nothing is stored)."""


@dataclass(frozen=True)
class Task:
    key: str
    name: str
    question: str
    answers: tuple[int, ...]
    labels: tuple[str, ...]   # one per answer, shown on the buttons
    keys: tuple[str, ...]     # keyboard shortcut per *button* (in on-screen order)
    ordinal: bool             # Krippendorff level: ordinal (rating) or nominal

    def check_answer(self, answer) -> int:
        if isinstance(answer, bool) or not isinstance(answer, int) or answer not in self.answers:
            allowed = ", ".join(str(a) for a in self.answers)
            raise AnswerError(f"answer {answer!r} is outside the {self.name} task's range; "
                              f"allowed: {allowed}")
        return answer


TASKS: dict[str, Task] = {
    "rating": Task(
        "rating", "similarity rating",
        "How similar do the two maps look? 1 = not at all similar, 7 = identical.",
        answers=(1, 2, 3, 4, 5, 6, 7), labels=("1", "2", "3", "4", "5", "6", "7"),
        keys=("1", "2", "3", "4", "5", "6", "7"), ordinal=True),
    "choice": Task(
        "choice", "two-alternative choice",
        "Which of the two lower maps looks more like the reference map on top?",
        answers=(0, 1), labels=("← left", "right →"), keys=("left", "right"), ordinal=False),
    "same_different": Task(
        "same_different", "same / different",
        "Do the two maps show the same pattern?",
        answers=(1, 0), labels=("← same", "different →"), keys=("left", "right"),
        ordinal=False),
}

# How each attention check is scored, stated in words for the analysis report.
CHECK_RULES: dict[str, str] = {
    "rating": "an identical pair passes when rated 5 or more; an unrelated pair when rated 3 "
              "or less",
    "choice": "a check trial passes when the candidate identical to the reference is chosen",
    "same_different": "an identical pair passes when answered 'same'; an unrelated pair when "
                      "answered 'different'",
}


def get_task(key: str) -> Task:
    try:
        return TASKS[key]
    except KeyError:
        raise ValueError(f"unknown task {key!r}; allowed: {', '.join(TASKS)}") from None


def check_passed(task: str, kind: str, answer: int, expected: int | None = None) -> bool:
    """Whether an attention-check answer passes (``kind``: 'identical' or 'unrelated';
    ``expected``: for the choice task, the candidate that is identical to the reference)."""
    if task == "rating":
        return answer >= 5 if kind == "identical" else answer <= 3
    if task == "choice":
        return answer == expected
    if task == "same_different":
        return answer == (1 if kind == "identical" else 0)
    raise ValueError(f"unknown task {task!r}; allowed: {', '.join(TASKS)}")
