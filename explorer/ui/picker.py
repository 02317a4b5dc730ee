"""The image picker of the sidebar: bundled samples with their gallery, a test-set index, or
an upload, plus the "Random image" button.

Uploads are decoded by ``explorer.uploads.load_upload`` (through the cached ``stages.upload_image``);
the last accepted file of each dataset is kept in the session so that the pages can use it.
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass

import streamlit as st

from explorer import data, uploads

from . import keys, stages
from .plain import literal, prose
from .state import SOURCES

__all__ = ["GALLERY_COLS", "GALLERY_CSS", "GALLERY_KEY", "GALLERY_ROWS", "ImageChoice",
           "SOURCE_LABELS", "image_controls"]

SOURCE_LABELS = {"sample": "Gallery", "index": "Test-set index", "upload": "Upload"}
GALLERY_COLS = 3  # 4 columns cut two-digit labels to "1…" in a 300 px sidebar
GALLERY_ROWS = 4
GALLERY_KEY = "gallery-grid"
# The gallery keeps its columns side by side on a phone (Streamlit stacks columns below 640 px,
# which made a one-thumbnail-wide strip) and its buttons show their whole label ("199").
GALLERY_CSS = f"""<style>
.st-key-{GALLERY_KEY} [data-testid="stHorizontalBlock"] {{flex-wrap: nowrap; flex-direction: row;}}
.st-key-{GALLERY_KEY} [data-testid="stColumn"] {{min-width: 0; width: auto; flex: 1 1 0;}}
.st-key-{GALLERY_KEY} button {{padding-left: 0.25rem; padding-right: 0.25rem; min-width: 0;}}
</style>"""


@dataclass(frozen=True)
class ImageChoice:
    """What the picker decided."""

    source: str  # "sample", "index" or "upload"
    image: int  # sample number or test-set index (0 for an upload)
    upload_sha: str | None  # identity of the accepted upload (":inverted" appended if so)
    upload_error: str | None  # why the last upload was refused


def _init(key: str, default) -> None:
    if key not in st.session_state:
        st.session_state[key] = default


@st.fragment
def _gallery(ds: str) -> None:
    """Thumbnails of the bundled images, a page at a time; clicking one picks it.

    A fragment: paging through thumbnails reruns only the gallery; picking an image reruns the app.
    """
    if st.session_state.pop(keys.gallery_picked(), False):
        st.rerun()
    samples = stages.samples(ds)
    n = len(samples.names)
    per_page = GALLERY_COLS * GALLERY_ROWS
    pages = max(1, -(-n // per_page))
    current = int(st.session_state.get(keys.image("sample", ds), 0))
    first = min(pages, 1 + current // per_page)
    if pages > 1:
        page = st.pagination(pages, default=first, key=keys.gallery_page(ds),
                             max_visible_pages=3, width="stretch")
    else:
        page = 1
    start = (page - 1) * per_page
    st.html(GALLERY_CSS)
    grid = st.container(key=GALLERY_KEY)
    for row in range(start, min(start + per_page, n), GALLERY_COLS):
        cols = grid.columns(GALLERY_COLS, gap="small")
        for j, col in enumerate(cols):
            i = row + j
            if i >= n:
                break
            with col:
                st.image(samples.thumbs[i], width="stretch")
                st.button(str(i), key=keys.gallery_thumb(ds, i), help=samples.names[i],
                          width="stretch", on_click=_pick_sample, args=(ds, i),
                          type="primary" if i == current else "secondary")


def _pick_sample(ds: str, i: int) -> None:
    st.session_state[keys.source()] = "sample"
    st.session_state[keys.image("sample", ds)] = i
    st.session_state[keys.gallery_picked()] = True


def _random_image(ds: str, n_samples: int, test_size: int | None) -> None:
    rng = random.Random()
    if test_size:
        st.session_state[keys.source()] = "index"
        st.session_state[keys.image("index", ds)] = rng.randrange(test_size)
    else:
        st.session_state[keys.source()] = "sample"
        st.session_state[keys.image("sample", ds)] = rng.randrange(max(n_samples, 1))


def _upload_controls(ds: str, info) -> tuple[str | None, str | None]:
    """The file uploader; returns (upload sha or None, refusal or None)."""
    accepted = st.session_state.setdefault(keys.accepted_uploads(), {})
    uploaded = st.file_uploader(
        f"Image file ({info.channels}-channel {info.size[0]}×{info.size[1]} after resizing)",
        type=None, key=keys.upload(ds),
        help="PNG, JPEG, WebP, BMP or GIF. The image is converted to the dataset's channels, "
             "resized and centre-cropped to its input size.")
    invert = False
    if info.channels == 1:
        _init(keys.invert(ds), False)
        invert = st.checkbox("Invert (dark strokes on light paper)", key=keys.invert(ds),
                             help=f"{info.name} images are light on a dark background.")
    upload_error = None
    if uploaded is not None:
        raw = uploaded.getvalue()
        sha = hashlib.sha256(raw).hexdigest()[:16]
        try:
            stages.upload_image(ds, uploaded.name, raw, sha, invert)
            accepted[ds] = (uploaded.name, sha, raw)
        except uploads.UploadError as exc:
            upload_error = str(exc)
            st.error(f"Refused: {prose(str(exc))}", icon=":material/block:")
    if ds in accepted and upload_error is None:
        st.caption(f"Using {literal(accepted[ds][0])}")
        return accepted[ds][1] + (":inverted" if invert else ""), None
    return None, upload_error


def image_controls(ds: str, info) -> ImageChoice:
    """The image source radio and the control of the chosen source."""
    samples = stages.samples(ds)
    n_samples = len(samples.names)
    test_size, _ = stages.test_set_size(ds)
    sample_key, index_key = keys.image("sample", ds), keys.image("index", ds)
    _init(keys.source(), "sample")
    _init(sample_key, 0)
    _init(index_key, 0)
    if st.session_state[sample_key] >= max(n_samples, 1):
        st.session_state[sample_key] = 0
    # "Test-set index" is offered only when the test set is on this machine.
    offered = [s for s in SOURCES if s != "index" or test_size is not None]
    if st.session_state[keys.source()] not in offered:
        st.session_state[keys.source()] = "sample"
    source = st.radio("Image", offered, key=keys.source(), horizontal=True,
                      format_func=SOURCE_LABELS.get)
    if test_size is None:
        st.caption(f"Test-set index: the {info.name} test set is not on this machine "
                   f"(`{data.import_command(ds)}`).")
    upload_sha = upload_error = None
    if source == "sample":
        if n_samples == 0:
            st.warning("No bundled images for this dataset.")
            return ImageChoice(source, 0, None, None)
        st.selectbox("Bundled image", range(n_samples), key=sample_key,
                     format_func=lambda i: f"{i}: {samples.names[i]}")
        with st.expander(f"Gallery ({n_samples} bundled images)", expanded=False):
            _gallery(ds)
        image = int(st.session_state[sample_key])
    elif source == "index":
        if st.session_state[index_key] >= test_size:
            st.session_state[index_key] = 0
        st.number_input(f"Test-set index (0..{test_size - 1})", min_value=0,
                        max_value=test_size - 1, step=1, key=index_key)
        image = int(st.session_state[index_key])
    else:
        image = 0
        upload_sha, upload_error = _upload_controls(ds, info)
    st.button("Random image", key=keys.random_image(ds), icon=":material/casino:",
              on_click=_random_image, args=(ds, n_samples, test_size),
              help="A random test-set image when the test set is on this machine, "
                   "else a random bundled image.")
    return ImageChoice(source, image, upload_sha, upload_error)
