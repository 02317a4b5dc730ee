"""Many users on one server: first maps and slider latency under N simultaneous browser sessions.

    python benchmarks/bench_concurrency.py [--users 10 20] [--rounds 3] [--moves 3]
    python benchmarks/bench_concurrency.py --threads      # torch threads per heavy job

Users: starts one `streamlit run streamlit_app.py` on 127.0.0.1 (as the browser tests do) and,
per count N, ``--rounds`` rounds of N Playwright contexts in one Debian chromium. In a round all
N open the app at once (MNIST); then, ``--moves`` times, a third of them (re)open a view with a
new seed and ``run=1`` (a short attack and its random-sign draw: heavy work) while the others
move the k slider by one, all at the same moment. Printed per round: time from navigation to
the first maps and table (median, p95, max), slider-to-numbers latency (key press to the table
showing the new k, timed in the page; median, p95, max), errors (error boxes, exceptions,
timeouts), and the server's RSS after the round's contexts are closed next to its warmed-up
level. Targets on a 2-core CPU with 10 users: p95 slider latency < 1.5 s, first maps < 15 s,
no errors, RSS within 500 MB of the warmed-up level after three rounds.

Bounded: at most 30 users, every wait has a timeout, the whole run stops after ``--budget-s``.

Threads (``--threads``): four heavy jobs (224×224 saliency maps of a ResNet-18 with fresh
weights) as the pool would run them: one slot with 2 torch threads (jobs one after the other),
two slots with 1 thread each, two slots with 2 threads each (oversubscribed); a light job (the
set metrics of a 224×224 pair, what a k move computes) is timed beside them.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "browser"))
sys.path.insert(0, str(ROOT))

MAX_USERS = 30

FIRST_MAPS_JS = """
(() => {
  window.__firstMaps = null;
  const check = () => {
    if (window.__firstMaps === null && document.querySelector('table.xm-table') &&
        document.querySelector('[data-testid="stPlotlyChart"] .main-svg')) {
      window.__firstMaps = performance.now();
    }
  };
  new MutationObserver(check).observe(document, {subtree: true, childList: true});
})();
"""

ARM_JS = """
([cls, target]) => {
  window.__latency = new Promise((resolve) => {
    let t0 = null;
    document.addEventListener('keydown', () => { t0 = performance.now(); },
                              {once: true, capture: true});
    const obs = new MutationObserver(() => {
      const head = document.querySelector('table.xm-table thead');
      if (t0 !== null && head && head.textContent.includes('(k = ' + target + ')')) {
        obs.disconnect();
        resolve(performance.now() - t0);
      }
    });
    obs.observe(document.body, {subtree: true, childList: true, characterData: true});
    setTimeout(() => resolve(-1), 60000);
  });
  document.querySelector('.' + cls + ' input[type=range]').focus();
}
"""

ERRORS_JS = """
() => document.querySelectorAll(
  '[data-testid="stException"], [data-testid="stAlertContentError"]').length
"""


def rss_mb(pid: int) -> float:
    """Resident memory of ``pid`` (the server), MB, from /proc."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def cpu_s(pid: int) -> float:
    """CPU seconds (user + system) used so far by ``pid``, from /proc."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    s = sorted(values)
    return s[min(len(s) - 1, max(0, int(round(q * (len(s) - 1)))))]


def summary(values: list[float]) -> str:
    if not values:
        return "none"
    return (f"median {statistics.median(values):.2f} s, p95 {pct(values, 0.95):.2f} s, "
            f"max {max(values):.2f} s (n = {len(values)})")


def one_round(browser, url: str, n: int, moves: int, round_no: int, deadline: float) -> dict:
    from conftest import VIEWPORT
    from ui_driver import IDLE, key_class

    cls = key_class("cfg.k.mnist")
    errors: list[str] = []
    first, lat = [], []
    contexts = [browser.new_context(viewport=VIEWPORT) for _ in range(n)]
    pages = []
    try:
        for c in contexts:
            c.add_init_script(FIRST_MAPS_JS)
            p = c.new_page()
            p.set_default_timeout(120_000)
            p.on("pageerror", lambda exc: errors.append(f"page error: {exc}"))
            pages.append(p)
        for i, p in enumerate(pages):  # all navigations start before any is waited for
            p.goto(url + f"/?a.steps=20&seed={round_no * 1000 + i}", wait_until="commit")
        for i, p in enumerate(pages):
            try:
                p.wait_for_function("() => window.__firstMaps !== null",
                                    timeout=max(1000, (deadline - time.monotonic()) * 1000))
                first.append(p.evaluate("() => window.__firstMaps") / 1000)
                p.wait_for_selector(IDLE, timeout=120_000)
            except Exception as exc:  # noqa: BLE001 - counted, reported
                errors.append(f"user {i} first maps: {type(exc).__name__}")
        attackers = set(range(0, n, 3))
        for m in range(moves):
            if time.monotonic() > deadline:
                errors.append("round stopped at the time budget")
                break
            armed = []
            for i, p in enumerate(pages):
                try:
                    if i in attackers:
                        p.goto(url + f"/?a.steps=20&seed={round_no * 1000 + 100 * (m + 1) + i}"
                               "&run=1", wait_until="commit")
                    else:
                        current = int(p.locator(f".{cls} input[type=range]").input_value())
                        p.evaluate(ARM_JS, [cls, current + 1])
                        p.keyboard.press("ArrowRight")
                        armed.append((i, p))
                except Exception as exc:  # noqa: BLE001
                    errors.append(f"user {i} move {m}: {type(exc).__name__}")
            for i, p in armed:
                try:
                    v = p.evaluate("() => window.__latency")
                    if v < 0:
                        errors.append(f"user {i} move {m}: no new numbers within 60 s")
                    else:
                        lat.append(v / 1000)
                except Exception as exc:  # noqa: BLE001
                    errors.append(f"user {i} move {m} latency: {type(exc).__name__}")
            for i, p in enumerate(pages):
                try:
                    p.wait_for_selector("table.xm-table", timeout=120_000)
                    p.wait_for_timeout(100)
                    p.wait_for_selector(IDLE, timeout=120_000)
                except Exception as exc:  # noqa: BLE001
                    errors.append(f"user {i} idle after move {m}: {type(exc).__name__}")
        for i, p in enumerate(pages):
            try:
                if p.evaluate(ERRORS_JS):
                    errors.append(f"user {i}: error box on the page")
            except Exception as exc:  # noqa: BLE001
                errors.append(f"user {i} final check: {type(exc).__name__}")
    finally:
        for c in contexts:
            c.close()
    return {"first": first, "lat": lat, "errors": errors}


def users_main(args) -> None:
    from playwright.sync_api import sync_playwright

    from conftest import CHROMIUM, CHROMIUM_ARGS, VIEWPORT, start_app, stop_app
    from ui_driver import open_app

    counts = [min(MAX_USERS, max(1, n)) for n in args.users]
    t_end = time.monotonic() + args.budget_s
    print(f"cores {os.cpu_count()}, load average {os.getloadavg()[0]:.1f} at start, "
          f"EXPLORER_HEAVY_JOBS={os.environ.get('EXPLORER_HEAVY_JOBS', '(default)')}", flush=True)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        url, proc, log = start_app()
        try:
            ctx = browser.new_context(viewport=VIEWPORT)  # warm-up: one user, every stage once
            page = ctx.new_page()
            page.set_default_timeout(180_000)
            t0 = time.perf_counter()
            open_app(page, url, "a.steps=20&run=1")
            print(f"warm-up (one user, cold server): {time.perf_counter() - t0:.1f} s to an "
                  "attacked view", flush=True)
            ctx.close()
            time.sleep(2)
            warm = rss_mb(proc.pid)
            print(f"server RSS warmed up: {warm:.0f} MB", flush=True)
            for n in counts:
                for r in range(args.rounds):
                    if time.monotonic() > t_end:
                        print("time budget spent: stopping", flush=True)
                        break
                    load0 = os.getloadavg()[0]
                    cpu0, wall0 = cpu_s(proc.pid), time.monotonic()
                    res = one_round(browser, url, n, args.moves, r + 1,
                                    min(t_end, time.monotonic() + args.round_s))
                    cpu = cpu_s(proc.pid) - cpu0
                    wall = time.monotonic() - wall0
                    time.sleep(3)
                    now = rss_mb(proc.pid)
                    print(f"{n} users, round {r + 1}: first maps {summary(res['first'])}; "
                          f"slider {summary(res['lat'])}; errors {len(res['errors'])}"
                          f"{' ' + '; '.join(res['errors'][:5]) if res['errors'] else ''}; "
                          f"server RSS {now:.0f} MB ({now - warm:+.0f} MB vs warmed up); "
                          f"server CPU {cpu:.0f} s in {wall:.0f} s of the round; "
                          f"load average {load0:.1f} -> {os.getloadavg()[0]:.1f}", flush=True)
        finally:
            stop_app(proc)
            browser.close()


def threads_main(args) -> None:
    import torch
    import torchvision

    from explorer import attributions, metrics

    torch.manual_seed(0)
    net = torchvision.models.resnet18(weights=None).eval()
    x = torch.rand(1, 3, 224, 224)
    a, b = torch.rand(224, 224), torch.rand(224, 224)

    def heavy():
        t = time.perf_counter()
        attributions.attribution_map(net, x, "saliency")
        return time.perf_counter() - t

    def light_loop(stop, out):
        while not stop.is_set():
            t = time.perf_counter()
            metrics.set_metrics(a, b, 1000, 1)
            out.append(time.perf_counter() - t)
            time.sleep(0.05)

    heavy()  # warm
    for _ in range(3):
        metrics.set_metrics(a, b, 1000, 1)
    quiet = []
    for _ in range(10):
        t = time.perf_counter()
        metrics.set_metrics(a, b, 1000, 1)
        quiet.append(time.perf_counter() - t)
    print(f"light job (set metrics, 224×224, k = 1000) alone: median "
          f"{1000 * statistics.median(quiet):.0f} ms", flush=True)
    jobs_n = args.jobs
    configs = ((1, 2), (2, 1), (2, 2))
    spans = {c: [] for c in configs}
    singles = {c: [] for c in configs}
    lights = {c: [] for c in configs}
    for _ in range(args.reps):  # the configurations alternate: a load change hits them all
        for slots, threads in configs:
            torch.set_num_threads(threads)
            heavy()
            times, light, stop = [], [], threading.Event()
            sem = threading.Semaphore(slots)
            lt = threading.Thread(target=light_loop, args=(stop, light))
            lt.start()
            t0 = time.perf_counter()

            def worker():
                with sem:
                    times.append(heavy())

            ws = [threading.Thread(target=worker) for _ in range(jobs_n)]
            for w in ws:
                w.start()
            for w in ws:
                w.join()
            spans[(slots, threads)].append(time.perf_counter() - t0)
            stop.set()
            lt.join()
            singles[(slots, threads)] += times
            lights[(slots, threads)] += light
    base = statistics.median(spans[configs[0]])
    for c in configs:
        span = statistics.median(spans[c])
        print(f"{c[0]} slot(s) × {c[1]} thread(s): {jobs_n} jobs in {span:.2f} s (median of "
              f"{args.reps}; {span / base:.2f}× the 1-slot figure), one job "
              f"{statistics.median(singles[c]):.2f} s median; light job beside them: median "
              f"{1000 * statistics.median(lights[c]):.0f} ms, p95 "
              f"{1000 * pct(lights[c], 0.95):.0f} ms (n = {len(lights[c])})", flush=True)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--users", type=int, nargs="+", default=[10, 20])
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--moves", type=int, default=3)
    p.add_argument("--round-s", type=float, default=240.0, help="time limit of one round")
    p.add_argument("--budget-s", type=float, default=1200.0, help="time limit of the whole run")
    p.add_argument("--threads", action="store_true", help="measure torch threads per job")
    p.add_argument("--jobs", type=int, default=8, help="heavy jobs for --threads")
    p.add_argument("--reps", type=int, default=5, help="repetitions of each --threads case")
    args = p.parse_args()
    if args.threads:
        threads_main(args)
    else:
        users_main(args)


if __name__ == "__main__":
    main()
