"""The frozen records of a study (values that cross modules): stimuli, pairs, trials.

No torch here, so that storage, sessions and simulated participants load quickly."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass, field

from .spec import StudySpec

__all__ = ["Stimulus", "Pair", "Trial", "FrozenStudy", "sha256", "new_study_id"]


@dataclass(frozen=True)
class Stimulus:
    id: str
    png: bytes
    sha256: str


@dataclass(frozen=True)
class Pair:
    """One (original, perturbed) map pair and its metrics: ``metrics[key] = {"score",
    "chance", "normalised"}`` (chance and normalised None when no chance level is known)."""

    id: int
    kind: str  # "candidate" | "identical" | "unrelated"
    image: int  # index into the dataset's bundled samples
    image_b: int  # the second image (differs from ``image`` only for unrelated pairs)
    image_name: str
    model: str
    method: str
    attack: str
    epsilon: float
    metrics: dict = field(hash=False)
    stratum: str = ""  # "disagree" | "spread" | "" (not a main pair)


@dataclass(frozen=True)
class Trial:
    """What one screen shows. ``pairs``: one pair (rating, same/different) or two pairs with the
    same original map (choice: candidate 0 and candidate 1). ``stimuli``: role -> stimulus id
    (rating/same: a, b; choice: ref, c0, c1; plus image_* roles when images are shown).
    ``expected``: the passing answer of a choice attention check."""

    id: int
    kind: str  # "main" | "practice" | "identical" | "unrelated"
    pairs: tuple[int, ...]
    stimuli: dict = field(hash=False)
    expected: int | None = None
    stratum: str = ""


@dataclass(frozen=True)
class FrozenStudy:
    id: str
    spec: StudySpec
    spec_toml: str
    stimuli: tuple[Stimulus, ...]
    pairs: tuple[Pair, ...]
    trials: tuple[Trial, ...]
    created_at: float
    chance_note: str
    digest: str  # SHA-256 over the stimuli hashes in id order: one fingerprint of the study


def sha256(blob: bytes) -> str:
    return hashlib.sha256(blob).hexdigest()


def new_study_id() -> str:
    return "s" + secrets.token_hex(5)
