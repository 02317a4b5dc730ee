"""Lessons: teaching walks through the paper's argument, as data (TOML), precomputed results
and a printable handout. The pages that present them live in ``explorer/ui/``."""

from .spec import Lesson, LessonError, Step, StepState, load_lesson, parse_lesson, shipped_lessons

__all__ = ["Lesson", "LessonError", "Step", "StepState", "load_lesson", "parse_lesson",
           "shipped_lessons"]
