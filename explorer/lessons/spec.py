"""Lessons as data: a TOML file of steps, parsed and checked into frozen dataclasses.

A lesson walks a class through one argument, one idea per step. Each step has a title, at most
three short paragraphs, the explorer state it shows (dataset, model, bundled image, method,
attack and its parameters, k, w and which view), at most two live controls and optionally a
question with choices and the text revealed after the answer. Keys a step leaves out come from
the lesson's ``[defaults]`` table. The format, by example::

    id = "my-lesson"
    title = "What a saliency map shows"
    [defaults]
    dataset = "mnist"
    model = "natural"
    image = 0                     # bundled sample number (the gallery order)
    method = "saliency"
    attack = "topk"
    attack_params = { steps = 40 }
    k = 100
    w = 1
    [[steps]]
    title = "A saliency map"
    text = ["First paragraph.", "Second paragraph."]
    view = "maps"
    controls = [{ name = "method", choices = ["saliency", "integrated_gradients"] }]
    [steps.question]
    prompt = "Which pixels light up?"
    choices = ["the stroke", "the background"]
    answer = 0                    # optional: index of the expected choice
    reveal = "The stroke: ..."

Everything is checked when the file is read, with a message naming the step, the field, what
was wrong and what is allowed.
"""

from __future__ import annotations

import hashlib
import tomllib
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Mapping

from .. import attacks, data, metrics, models
from ..attributions import METHODS
from ..params import resolve

__all__ = [
    "VIEWS", "CONTROLS", "MAX_PARAGRAPHS", "MAX_CONTROLS", "LessonError", "StepState", "Control",
    "Question", "Step", "Lesson", "parse_lesson", "load_lesson", "state_value", "SHIPPED_DIR",
    "shipped_lessons",
]

# What a step can show: the image and its map; the map before and after the attack; the attack
# beside random sign noise; scores with their chance levels; the neighbourhood overlap; the
# diverse top-k picks; every score.
VIEWS = ("maps", "attack", "noise", "chance", "overlap", "diverse", "scores")
# Live controls a step may offer. k and w only re-score the precomputed maps; a method or model
# choice selects among precomputed attack results (one per listed choice).
CONTROLS = ("k", "w", "method", "model")
MAX_PARAGRAPHS = 3
MAX_PARAGRAPH_CHARS = 700
MAX_CONTROLS = 2
MAX_STEPS = 20
SHIPPED_DIR = Path(__file__).resolve().parents[2] / "assets" / "lessons"
_STATE_KEYS = ("dataset", "model", "image", "method", "method_params", "attack",
               "attack_params", "seed", "k", "w", "view")


class LessonError(ValueError):
    """A lesson file that cannot be used; the message says where and what is allowed."""


@dataclass(frozen=True)
class StepState:
    """The explorer state one step shows. Parameters are sorted ``(name, value)`` tuples so a
    state is hashable and has one canonical form."""

    dataset: str
    model: str
    image: int
    method: str
    method_params: tuple[tuple[str, Any], ...]
    attack: str
    attack_params: tuple[tuple[str, Any], ...]
    seed: int
    k: int
    w: int
    view: str

    def attack_key(self) -> str:
        """Digest of what the attack result depends on (not k, w or the view)."""
        raw = repr((self.dataset, self.model, self.image, self.method, self.method_params,
                    self.attack, self.attack_params, self.seed))
        return hashlib.sha256(raw.encode()).hexdigest()[:16]

    def with_value(self, name: str, value: Any) -> "StepState":
        """This state with one field changed; a new method gets its own default parameters."""
        if name == "method" and value != self.method:
            params = tuple(sorted(resolve(METHODS[value].params, {}).items()))
            return replace(self, method=value, method_params=params)
        return replace(self, **{name: value})


@dataclass(frozen=True)
class Control:
    """A live control: ``k``/``w`` over ``choices`` (ints), ``method``/``model`` over keys."""

    name: str
    choices: tuple


@dataclass(frozen=True)
class Question:
    prompt: str
    choices: tuple[str, ...]
    answer: int | None
    reveal: str


@dataclass(frozen=True)
class Step:
    title: str
    paragraphs: tuple[str, ...]
    state: StepState
    controls: tuple[Control, ...]
    question: Question | None

    def variants(self) -> tuple[StepState, ...]:
        """Every state whose attack result the step can show: its own, and one per choice of
        a method or model control (k and w need no new attack)."""
        out = [self.state]
        for c in self.controls:
            if c.name in ("method", "model"):
                out += [self.state.with_value(c.name, v) for v in c.choices]
        seen, unique = set(), []
        for s in out:
            if s.attack_key() not in seen:
                seen.add(s.attack_key())
                unique.append(s)
        return tuple(unique)


@dataclass(frozen=True)
class Lesson:
    id: str
    title: str
    summary: str
    steps: tuple[Step, ...]
    sha256: str  # of the file's text: a precomputed file records which version it serves

    def variants(self) -> tuple[StepState, ...]:
        seen, out = set(), []
        for step in self.steps:
            for s in step.variants():
                if s.attack_key() not in seen:
                    seen.add(s.attack_key())
                    out.append(s)
        return tuple(out)


# ---------------------------------------------------------------------------------------------

def _text(value, where: str, *, limit: int = MAX_PARAGRAPH_CHARS, required: bool = True) -> str:
    if value is None and not required:
        return ""
    if not isinstance(value, str) or not value.strip():
        raise LessonError(f"{where} must be a non-empty string; got {value!r:.80}")
    if len(value) > limit:
        raise LessonError(f"{where} is {len(value)} characters long; at most {limit} are allowed")
    return value.strip()


def _int(value, where: str, lo: int, hi: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise LessonError(f"{where} must be an integer; got {value!r:.80}")
    if value < lo or (hi is not None and value > hi):
        rng = f"{lo}..{hi}" if hi is not None else f">= {lo}"
        raise LessonError(f"{where} must be in {rng}; got {value}")
    return value


def _choice(value, where: str, allowed) -> str:
    allowed = list(allowed)
    if value not in allowed:
        raise LessonError(f"{where} must be one of {', '.join(map(str, allowed))}; got {value!r:.80}")
    return value


def _n_samples(dataset: str) -> int:
    return len(data.load_samples(dataset))


def _state(raw: Mapping[str, Any], where: str) -> StepState:
    missing = [k for k in ("dataset", "model", "method", "attack", "view") if k not in raw]
    if missing:
        raise LessonError(f"{where} does not say {', '.join(missing)} (give them in the step or "
                          "in [defaults])")
    dataset = _choice(raw["dataset"], f"{where}: dataset", data.DATASETS)
    model = _choice(raw["model"], f"{where}: model", [m.name for m in models.models_for(dataset)])
    method = _choice(raw["method"], f"{where}: method", METHODS)
    usable = [a for a, info in attacks.ATTACKS.items() if not info.needs_region]
    attack = _choice(raw["attack"], f"{where}: attack", usable)
    image = _int(raw.get("image", 0), f"{where}: image", 0, _n_samples(dataset) - 1)
    seed = _int(raw.get("seed", 0), f"{where}: seed", 0, 2 ** 31 - 1)
    h, w_ = data.DATASETS[dataset].size
    try:
        mparams = resolve(METHODS[method].params, dict(raw.get("method_params", {})))
        aparams = attacks.attack_params(attack, data.DATASETS[dataset].defaults,
                                        dict(raw.get("attack_params", {})))
        k = metrics.validate_k(raw.get("k", data.DATASETS[dataset].defaults.eval_k), h, w_)
        w = metrics.validate_w(raw.get("w", 1))
    except (ValueError, TypeError) as exc:
        raise LessonError(f"{where}: {exc}") from None
    aparams.pop("seed", None)  # the state's seed is the one seed
    if "attack_k" in aparams:
        aparams["attack_k"] = min(int(aparams["attack_k"]), h * w_)
    view = _choice(raw["view"], f"{where}: view", VIEWS)
    return StepState(dataset, model, image, method, tuple(sorted(mparams.items())), attack,
                     tuple(sorted(aparams.items())), seed, k, w, view)


def _control(raw, where: str, state: StepState) -> Control:
    if not isinstance(raw, Mapping) or "name" not in raw:
        raise LessonError(f"{where} must be a table with a name ({', '.join(CONTROLS)}) and "
                          "choices")
    name = _choice(raw["name"], f"{where}: name", CONTROLS)
    choices = raw.get("choices")
    if not isinstance(choices, list) or not 2 <= len(choices) <= 12:
        raise LessonError(f"{where}: choices must be a list of 2 to 12 values; got {choices!r:.80}")
    h, w_ = data.DATASETS[state.dataset].size
    out = []
    for i, c in enumerate(choices):
        at = f"{where}: choices[{i}]"
        if name == "k":
            out.append(_int(c, at, 1, h * w_))
        elif name == "w":
            out.append(_int(c, at, 0, 32))
        elif name == "method":
            out.append(_choice(c, at, METHODS))
        else:
            out.append(_choice(c, at, [m.name for m in models.models_for(state.dataset)]))
    if state_value(state, name) not in out:
        raise LessonError(f"{where}: the step's own {name} ({state_value(state, name)!r}) must be "
                          "one of the choices")
    return Control(name, tuple(out))


def state_value(state: StepState, name: str):
    """The state's value of a live control ``name`` (k, w, method or model)."""
    return {"k": state.k, "w": state.w, "method": state.method, "model": state.model}[name]


def _question(raw, where: str) -> Question:
    if not isinstance(raw, Mapping):
        raise LessonError(f"{where} must be a table with prompt, choices and reveal")
    prompt = _text(raw.get("prompt"), f"{where}: prompt", limit=300)
    choices = raw.get("choices")
    if not isinstance(choices, list) or not 2 <= len(choices) <= 6:
        raise LessonError(f"{where}: choices must be a list of 2 to 6 strings; got {choices!r:.80}")
    choices = tuple(_text(c, f"{where}: choices[{i}]", limit=120) for i, c in enumerate(choices))
    answer = raw.get("answer")
    if answer is not None:
        answer = _int(answer, f"{where}: answer", 0, len(choices) - 1)
    reveal = _text(raw.get("reveal"), f"{where}: reveal")
    return Question(prompt, choices, answer, reveal)


def parse_lesson(text: str, source: str = "lesson file") -> Lesson:
    """Parse and check a lesson; LessonError says what is wrong and what is allowed."""
    if not isinstance(text, str):
        raise LessonError(f"{source} must be text (UTF-8 TOML)")
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise LessonError(f"{source} is not valid TOML: {exc}") from None
    lesson_id = raw.get("id")
    if not isinstance(lesson_id, str) or not lesson_id.replace("-", "").replace("_", "").isalnum():
        raise LessonError(f"{source}: id must be letters, digits, '-' or '_'; got {lesson_id!r:.80}")
    title = _text(raw.get("title"), f"{source}: title", limit=120)
    summary = _text(raw.get("summary"), f"{source}: summary", required=False)
    defaults = raw.get("defaults", {})
    if not isinstance(defaults, Mapping):
        raise LessonError(f"{source}: [defaults] must be a table")
    unknown = [k for k in defaults if k not in _STATE_KEYS]
    if unknown:
        raise LessonError(f"{source}: [defaults] has unknown keys {', '.join(unknown)}; allowed: "
                          f"{', '.join(_STATE_KEYS)}")
    raw_steps = raw.get("steps")
    if not isinstance(raw_steps, list) or not 1 <= len(raw_steps) <= MAX_STEPS:
        raise LessonError(f"{source}: a lesson needs 1 to {MAX_STEPS} [[steps]]")
    steps = []
    allowed_step = set(_STATE_KEYS) | {"title", "text", "controls", "question"}
    for i, rs in enumerate(raw_steps, start=1):
        where = f"{source}: step {i}"
        unknown = [k for k in rs if k not in allowed_step]
        if unknown:
            raise LessonError(f"{where} has unknown keys {', '.join(unknown)}; allowed: "
                              f"{', '.join(sorted(allowed_step))}")
        s_title = _text(rs.get("title"), f"{where}: title", limit=120)
        paras = rs.get("text", [])
        if isinstance(paras, str):
            paras = [paras]
        if not isinstance(paras, list) or len(paras) > MAX_PARAGRAPHS:
            raise LessonError(f"{where}: text must be a list of at most {MAX_PARAGRAPHS} paragraphs")
        paras = tuple(_text(p, f"{where}: text[{j}]") for j, p in enumerate(paras))
        merged = {**defaults, **{k: v for k, v in rs.items() if k in _STATE_KEYS}}
        for table in ("method_params", "attack_params"):
            if table in defaults and table in rs:
                merged[table] = {**defaults[table], **rs[table]}
        state = _state(merged, where)
        raw_controls = rs.get("controls", [])
        if not isinstance(raw_controls, list) or len(raw_controls) > MAX_CONTROLS:
            raise LessonError(f"{where}: at most {MAX_CONTROLS} live controls are allowed")
        controls = tuple(_control(c, f"{where}: controls[{j}]", state)
                         for j, c in enumerate(raw_controls))
        if len({c.name for c in controls}) != len(controls):
            raise LessonError(f"{where}: a control is listed twice")
        question = _question(rs["question"], f"{where}: question") if "question" in rs else None
        steps.append(Step(s_title, paras, state, controls, question))
    sha = hashlib.sha256(text.encode("utf-8")).hexdigest()
    return Lesson(lesson_id, title, summary, tuple(steps), sha)


def load_lesson(path) -> Lesson:
    """Read a lesson file; LessonError when it is missing, unreadable or invalid."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise LessonError(f"cannot read lesson file {path.name}: {exc.__class__.__name__}: "
                          f"{exc}") from None
    return parse_lesson(text, path.name)


def shipped_lessons() -> dict[str, Path]:
    """The lesson files shipped in ``assets/lessons/``, by id (file stem)."""
    return {p.stem: p for p in sorted(SHIPPED_DIR.glob("*.toml"))}
