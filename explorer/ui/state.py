"""The view configuration: one dataclass, its URL form, and its cache keys.

A :class:`Config` says everything that determines what the explorer page shows. It round-trips
through ``st.query_params`` (so a link reproduces a view) and into the exported JSON. All values
are kept in the library's units (ε in [0, 1] pixel units, whatever the dataset).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from typing import Any, Mapping, Sequence

SOURCES = ("sample", "index", "upload")
DEVICES = ("auto", "cuda", "cpu")


@dataclass
class Config:
    dataset: str
    model: str
    source: str = "sample"  # "sample" (bundled), "index" (test set), "upload"
    image: int = 0  # sample number or test-set index
    upload_sha: str | None = None
    method: str = "saliency"
    method_params: dict[str, Any] = field(default_factory=dict)
    attack: str = "topk"
    attack_params: dict[str, Any] = field(default_factory=dict)
    region: tuple[int, int, int, int] | None = None  # rows r0..r1, cols c0..c1 (inclusive)
    seed: int = 0
    device: str = "auto"
    k: int = 100
    w: int = 1

    # ------------------------------------------------------------------ keys for the caches
    def image_key(self) -> str:
        if self.source == "upload":
            return f"{self.dataset}:upload:{self.upload_sha}"
        return f"{self.dataset}:{self.source}:{self.image}"

    def method_items(self) -> tuple:
        return tuple(sorted(self.method_params.items()))

    def attack_items(self) -> tuple:
        return tuple(sorted(self.attack_params.items()))

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["region"] = list(self.region) if self.region else None
        return d

    def fingerprint(self) -> str:
        """A short stable id of the attack-relevant configuration (not k, w)."""
        d = self.to_dict()
        d.pop("k")
        d.pop("w")
        raw = json.dumps(d, sort_keys=True, default=str)
        return hashlib.sha256(raw.encode()).hexdigest()[:16]


# ---------------------------------------------------------------------- URL form
# Short names keep links readable. Method / attack parameters are "m.<name>" / "a.<name>".

def to_query(cfg: Config, *, ran: bool = False) -> dict[str, str]:
    q: dict[str, str] = {
        "ds": cfg.dataset,
        "model": cfg.model,
        "src": cfg.source,
    }
    if cfg.source != "upload":
        q["img"] = str(cfg.image)
    q["method"] = cfg.method
    for name, value in cfg.method_params.items():
        q[f"m.{name}"] = _to_text(value)
    q["attack"] = cfg.attack
    for name, value in cfg.attack_params.items():
        q[f"a.{name}"] = _to_text(value)
    if cfg.region is not None:
        q["region"] = ",".join(str(v) for v in cfg.region)
    q["seed"] = str(cfg.seed)
    q["dev"] = cfg.device
    q["k"] = str(cfg.k)
    q["w"] = str(cfg.w)
    if ran:
        q["run"] = "1"
    return q


def _to_text(value: Any) -> str:
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, float):
        return repr(value)
    return str(value)


def parse_value(param, text: str) -> Any:
    """Turn URL text into a value for a :class:`explorer.params.Param` (then checked by it)."""
    if param.kind == "bool":
        lowered = text.strip().lower()
        if lowered in ("1", "true", "yes", "on"):
            return True
        if lowered in ("0", "false", "no", "off"):
            return False
        raise ValueError(f"parameter {param.name!r} must be true or false; got {text!r}")
    if param.kind == "choice":
        for choice in param.choices:
            if str(choice) == text:
                return param.check(choice)
        raise ValueError(f"parameter {param.name!r} must be {param.allowed()}; got {text!r}")
    try:
        number = float(text) if param.kind == "float" else int(text)
    except ValueError:
        raise ValueError(f"parameter {param.name!r} must be {param.allowed()}; got {text!r}") from None
    return param.check(number)


def parse_params(specs: Sequence, query: Mapping[str, str], prefix: str,
                 problems: list[str]) -> dict[str, Any]:
    """Values of ``specs`` found in ``query`` under ``prefix``; bad ones reported, not raised."""
    by_name = {p.name: p for p in specs}
    out: dict[str, Any] = {}
    for key, text in query.items():
        if not key.startswith(prefix):
            continue
        name = key[len(prefix):]
        if name not in by_name:
            problems.append(f"link parameter `{key}` is not a parameter here "
                            f"(allowed: {', '.join(by_name) or 'none'}); ignored")
            continue
        try:
            out[name] = parse_value(by_name[name], text)
        except ValueError as exc:
            problems.append(f"link parameter `{key}`: {exc}; using the default")
    return out


def parse_int(query: Mapping[str, str], key: str, problems: list[str], *,
              lo: int | None = None, hi: int | None = None, what: str = "") -> int | None:
    if key not in query:
        return None
    text = query[key]
    try:
        value = int(text)
    except ValueError:
        problems.append(f"link parameter `{key}` must be an integer; got {text!r}; using the default")
        return None
    if (lo is not None and value < lo) or (hi is not None and value > hi):
        rng = f"{lo}..{hi}" if hi is not None else f">= {lo}"
        problems.append(f"link parameter `{key}` = {value} is out of range "
                        f"({what or 'allowed'}: {rng}); using the default")
        return None
    return value


def parse_region(text: str, height: int, width: int) -> tuple[int, int, int, int]:
    try:
        r0, r1, c0, c1 = (int(v) for v in text.split(","))
    except ValueError:
        raise ValueError(f"region must be four integers r0,r1,c0,c1; got {text!r}") from None
    if not (0 <= r0 <= r1 < height and 0 <= c0 <= c1 < width):
        raise ValueError(f"region rows must satisfy 0 <= r0 <= r1 < {height} and columns "
                         f"0 <= c0 <= c1 < {width}; got {text!r}")
    return r0, r1, c0, c1
