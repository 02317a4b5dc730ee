"""Every ``st.session_state`` key of the app, built in one place.

Configuration keys start with :data:`CONFIG_PREFIX` (``cfg.``): they hold the sidebar's widget
values (in the widgets' units: pixel budgets of RGB data in 1/255) and survive page switches
(``controls.keep_state``). Keys that depend on the dataset are kept per dataset so that switching
datasets and back restores each one's settings. Page-local widget keys are built by
:func:`widget`. No streamlit import: these are plain strings.
"""

from __future__ import annotations

__all__ = [
    "CONFIG_PREFIX", "accepted_uploads", "attack", "attack_param", "attacks_done", "autorun",
    "compare_link", "compare_with", "dataset", "device", "gallery_page", "gallery_picked", "gallery_thumb", "image",
    "invert", "k", "link_loaded", "link_problems", "method", "method_param", "model",
    "present", "random_image", "region_cols", "region_rows", "reset_attack", "resolved_device",
    "seed", "smooth", "source", "upload", "w", "widget", "zoom", "zoom_open",
]

CONFIG_PREFIX = "cfg."


def _cfg(*parts: object) -> str:
    return CONFIG_PREFIX + ".".join(str(p) for p in parts)


def widget(*parts: object) -> str:
    """A page-local widget key: the parts joined by dots (``widget("exp", "chart", "w")``)."""
    return ".".join(str(p) for p in parts)


# ------------------------------------------------------------------ the configuration (cfg.*)

def dataset() -> str:
    return _cfg("dataset")


def model(ds: str) -> str:
    return _cfg("model", ds)


def source() -> str:
    return _cfg("source")


def image(source: str, ds: str) -> str:
    """The picked image of a source: ``source`` is "sample" (bundled) or "index" (test set)."""
    return _cfg(source, ds)


def invert(ds: str) -> str:
    return _cfg("invert", ds)


def method() -> str:
    return _cfg("method")


def method_param(method_key: str, name: str) -> str:
    return _cfg("mp", method_key, name)


def attack() -> str:
    return _cfg("attack")


def attack_param(ds: str, attack_key: str, name: str) -> str:
    return _cfg("ap", ds, attack_key, name)


def region_rows(ds: str) -> str:
    return _cfg("region_rows", ds)


def region_cols(ds: str) -> str:
    return _cfg("region_cols", ds)


def seed() -> str:
    return _cfg("seed")


def device() -> str:
    return _cfg("device")


def k(ds: str) -> str:
    return _cfg("k", ds)


def w(ds: str) -> str:
    return _cfg("w", ds)


# ------------------------------------------------------------------ how the view is shown

def present() -> str:
    """Presenter mode (large type, no sidebar) on the explorer page."""
    return _cfg("present")


def smooth() -> str:
    """Display smoothing σ of the maps (pixels; never used by a score)."""
    return _cfg("smooth")


def zoom() -> str:
    """What the larger view shows (one of ``link.ZOOM_VIEWS``)."""
    return _cfg("zoom")


def zoom_open() -> str:
    """Whether the larger view is open when the page is first drawn (from the link)."""
    return _cfg("zoom_open")


def resolved_device() -> str:
    """The device the sidebar's choice resolved to ("cpu" / "cuda")."""
    return _cfg("resolved_device")


def autorun() -> str:
    """Set when the link asks to run the attack on open (``run=1``)."""
    return _cfg("autorun")


def link_loaded() -> str:
    """Set once the session's link has been read (links apply on the first run only)."""
    return _cfg("loaded")


def compare_with(ds: str) -> str:
    """The Compare page's second model (the first is the sidebar's)."""
    return _cfg("cmp_vs", ds)


def compare_link() -> str:
    """The problems of the Compare page's own link parameter, once it has been read."""
    return _cfg("cmp_link")


def link_problems() -> str:
    """The problems found in the session's link (kept to show them on every page)."""
    return _cfg("link_problems")


# ------------------------------------------------------------------ image picker widgets

def upload(ds: str) -> str:
    return widget("upl", ds)


def accepted_uploads() -> str:
    """{dataset: (file name, sha, bytes)} of the last accepted upload per dataset."""
    return "upload.accepted"


def gallery_page(ds: str) -> str:
    return widget("gallery", "page", ds)


def gallery_picked() -> str:
    return widget("gallery", "picked")


def gallery_thumb(ds: str, i: int) -> str:
    return widget("gal", ds, i)


def random_image(ds: str) -> str:
    return widget("rand", ds)


def reset_attack(ds: str, attack_key: str) -> str:
    return widget("reset", ds, attack_key)


# ------------------------------------------------------------------ runs

def attacks_done() -> str:
    """The set of attack call keys this session has run (shown again without a click)."""
    return "attacks.done"
