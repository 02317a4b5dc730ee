"""Peak memory and time of the worst uploads: the upload code before the bounded decoder
(``explorer/data.py`` at commit BEFORE, read from git) and now (``explorer.uploads``), side by
side in one run.

    python benchmarks/bench_upload.py [--skip-before] [--only NAME ...]

Each case runs in a fresh Python process that first imports everything and warms the decoder
on a small image; the peak resident memory (VmHWM, reset through /proc/self/clear_refs just
before the call) is then reported above that warmed level. Linux only.
"""

from __future__ import annotations

import argparse
import json
import struct
import subprocess
import sys
import tempfile
import zlib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
BEFORE = "2a286ca"  # the last commit with the unbounded upload path in explorer/data.py


def _png_strip(width: int, height: int) -> bytes:
    """A real (decodable) 8-bit grayscale PNG of width×height mid-grey pixels."""
    row = b"\0" + b"\x80" * width
    comp = zlib.compressobj(9)
    body = b"".join(comp.compress(row) for _ in range(height)) + comp.flush()

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", body) + chunk(b"IEND", b"")


def _photo(w: int, h: int):
    from PIL import Image

    g = Image.linear_gradient("L").resize((w, h))
    return Image.merge("RGB", (g, g.transpose(Image.Transpose.FLIP_LEFT_RIGHT),
                               g.transpose(Image.Transpose.FLIP_TOP_BOTTOM)))


def make_cases(folder: Path) -> list[tuple[str, str, str, str]]:
    """(name, file, dataset, what) for every case, files written into ``folder``."""
    cases = []

    def add(name, filename, dataset, what, writer):
        path = folder / filename
        writer(path)
        cases.append((name, str(path), dataset, what))

    add("strip_1x1M_mnist", "strip1m.png", "mnist", "1×1,000,000 PNG, MNIST",
        lambda p: p.write_bytes(_png_strip(1_000_000, 1)))
    add("strip_1x2M_mnist", "strip2m.png", "mnist", "1×2,000,000 PNG, MNIST",
        lambda p: p.write_bytes(_png_strip(1, 2_000_000)))
    add("strip_1x40M_imagenet", "strip40m.png", "imagenet", "1×39,999,999 PNG, ImageNet",
        lambda p: p.write_bytes(_png_strip(39_999_999, 1)))
    rgb = _photo(8000, 5000)
    add("rgb_40mp_png", "rgb40.png", "imagenet", "8000×5000 RGB PNG, ImageNet",
        lambda p: rgb.save(p, compress_level=1))
    rgba = rgb.copy()
    rgba.putalpha(rgb.getchannel(0))
    add("rgba_40mp_png", "rgba40.png", "imagenet", "8000×5000 RGBA PNG, ImageNet",
        lambda p: rgba.save(p, compress_level=1))
    del rgba
    add("gif_40mp", "p40.gif", "mnist", "8000×5000 GIF (palette), MNIST",
        lambda p: rgb.quantize(64).save(p))
    del rgb
    photo = _photo(8000, 6000)
    add("jpeg_48mp", "base48.jpg", "imagenet", "8000×6000 baseline JPEG (48 MP phone photo)",
        lambda p: photo.save(p, quality=85))
    add("jpeg_48mp_progressive", "prog48.jpg", "imagenet", "8000×6000 progressive JPEG 4:2:0",
        lambda p: photo.save(p, quality=85, progressive=True))
    del photo
    add("webp_15mp", "w15.webp", "imagenet", "4500×3333 WebP",
        lambda p: _photo(4500, 3333).save(p, quality=50, method=0))
    return cases


_CHILD = r"""
import io, json, sys, time, types
from pathlib import Path
sys.path.insert(0, {root!r})
import numpy as np, torch
from PIL import Image
impl, path, dataset = sys.argv[1:4]
if impl == "before":
    src = Path(sys.argv[4]).read_text()
    mod = types.ModuleType("old_data")
    mod.__file__ = {data_py!r}
    sys.modules["old_data"] = mod
    exec(compile(src, "old_data.py", "exec"), mod.__dict__)
    load, Err = mod.load_upload, mod.UploadError
else:
    from explorer import uploads
    load, Err = uploads.load_upload, uploads.UploadError
buf = io.BytesIO(); Image.new("RGB", (64, 48)).save(buf, "PNG")
load(buf.getvalue(), "warm.png", dataset)
blob = Path(path).read_bytes()
def status(key):
    for line in open("/proc/self/status"):
        if line.startswith(key):
            return int(line.split()[1]) / 1024
open("/proc/self/clear_refs", "w").write("5")
base = status("VmRSS")
t0 = time.perf_counter()
try:
    x = load(blob, Path(path).name, dataset)
    outcome = "accepted " + "x".join(map(str, x.shape))
except Err as exc:
    outcome = "refused: " + str(exc)[:90]
except Exception as exc:
    outcome = "CRASH " + type(exc).__name__ + ": " + str(exc)[:70]
seconds = time.perf_counter() - t0
peak = status("VmHWM") - base
planned = None
if impl == "now" and outcome.startswith("accepted"):
    from explorer import data
    with Image.open(io.BytesIO(blob)) as im:
        plan = uploads.plan_decode(im, "x", min(data.DATASETS[dataset].size))
    planned = plan.memory_bytes / 2**20
print(json.dumps({{"peak_mb": peak, "seconds": seconds, "outcome": outcome, "planned_mb": planned}}))
"""


def run_case(impl: str, path: str, dataset: str, before_src: Path | None) -> dict:
    code = _CHILD.format(root=str(ROOT), data_py=str(ROOT / "explorer" / "data.py"))
    args = [sys.executable, "-c", code, impl, path, dataset] + ([str(before_src)] if before_src else [])
    proc = subprocess.run(args, capture_output=True, text=True, timeout=900)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if proc.returncode != 0 or not lines:
        tail = (proc.stderr.strip().splitlines() or ["?"])[-1]
        return {"peak_mb": float("nan"), "seconds": float("nan"),
                "outcome": f"process died (rc {proc.returncode}): {tail[:80]}"}
    return json.loads(lines[-1])


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--skip-before", action="store_true", help="measure the current code only")
    ap.add_argument("--only", nargs="*", default=None, help="case names to run")
    args = ap.parse_args(argv)
    from explorer import uploads

    print(f"upload memory budget: {uploads.UPLOAD_MEMORY_BUDGET / 2**20:.0f} MiB "
          f"(peak above the warmed process, MB = 2^20 bytes)")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        before_src = None
        if not args.skip_before:
            try:
                text = subprocess.run(["git", "show", f"{BEFORE}:explorer/data.py"], cwd=ROOT,
                                      capture_output=True, text=True, check=True).stdout
                before_src = tmp / "old_data.py"
                before_src.write_text(text)
            except (subprocess.CalledProcessError, FileNotFoundError):
                print(f"(git history without {BEFORE}: measuring the current code only)")
        cases = make_cases(tmp)
        print("| case | before: peak MB | before: s | before: outcome | now: peak MB "
              "(planned) | now: s | now: outcome |")
        print("|---|---:|---:|---|---:|---:|---|")
        for name, path, dataset, what in cases:
            if args.only and name not in args.only:
                continue
            now = run_case("now", path, dataset, None)
            old = run_case("before", path, dataset, before_src) if before_src else None
            cells = [f"{what}"]
            for r in (old, now):
                if r is None:
                    cells += ["-", "-", "-"]
                else:
                    planned = f" ({r['planned_mb']:.0f})" if r.get("planned_mb") is not None else ""
                    cells += [f"{r['peak_mb']:.0f}{planned}", f"{r['seconds']:.2f}", r["outcome"]]
            print("| " + " | ".join(cells) + " |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
