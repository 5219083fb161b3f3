"""Runs the console's browser tests: `python -m console suite` (the flows) or
`python -m console loadtime` (page load times). Prints `OK` last when all passed."""

import os
import statistics
import sys
import time
import traceback

from . import flows
from .fixture import load
from .harness import Browser

# API requests a page may make to load (whoami + its own few; a request per row of 100
# functions would be far more).
MAX_API_CALLS = 6


def run_suite(fx, names):
    """Runs the tests named in `names` (all when empty); returns the names that failed."""
    known = [t.__name__ for t in flows.SUITE]
    unknown = [n for n in names if n not in known]
    if unknown:
        raise SystemExit(f"no such test: {', '.join(unknown)} (the tests: {', '.join(known)})")
    b = Browser(fx.url)
    failed = []
    ran = []
    try:
        for test in flows.SUITE:
            if names and test.__name__ not in names:
                continue
            ran.append(test.__name__)
            started = time.time()
            print(f"{test.__name__} ...", flush=True)
            try:
                test(b, fx)
                b.check_clean()
                print(f"{test.__name__}: passed ({time.time() - started:.1f} s)", flush=True)
            except Exception:  # noqa: BLE001 - report every failure, run the rest
                failed.append(test.__name__)
                print(f"{test.__name__}: FAILED ({time.time() - started:.1f} s)\n{traceback.format_exc()}", flush=True)
                try:
                    b.screenshot(f"FAILED-{test.__name__}")
                    leftover = b.problems()
                    if leftover:
                        print("  also from the browser:\n    " + "\n    ".join(leftover))
                except Exception:  # noqa: BLE001
                    pass
                b.expected = []
        print(f"{b.requests} requests seen by the browser")
    finally:
        b.quit()
    assert ran, "no test ran"
    assert not names or set(names) <= set(ran), f"asked for {names}, ran {ran}"
    return failed


def page_loads(fx, rounds):
    """Full page loads (navigationStart -> <html data-ready>) of every main page: the
    tenant admin's, then the platform admin's own (admin/*)."""
    b = Browser(fx.url, screenshots="")
    try:
        b.sign_in(fx.keys["admin"])
        pages = [(r, r) for r in b.nav_routes()]
        assert pages, "no pages in the tenant admin's navigation"
        pages.append((f"functions/{fx.deployed}", "functions/:name"))
        b.go("functions")
        rows = len(b.all("table.functions tbody tr[data-row]"))
        assert rows >= fx.functions, f"the functions page lists {rows} functions, the tenant has {fx.functions}"
        results = time_pages(b, pages, rounds, "tenant admin")
        b.sign_in(fx.platform_key)
        own = [(r, r) for r in b.nav_routes() if r.startswith("admin/")]
        results += time_pages(b, own, rounds, "platform admin")
        b.check_clean()
        return rows, results
    finally:
        b.quit()


def time_pages(b, pages, rounds, who):
    assert pages, f"no pages to time for the {who}"
    results = []
    for route, ready in pages:
        times = []
        api_calls = 0
        for _ in range(rounds):
            b.open(route, ready=ready)
            t = b.driver.execute_script(
                "const r = window.__hfReady.find(([v]) => v === arguments[0]); return r && r[1];", ready)
            assert t is not None, f"no data-ready={ready} recorded for #/{route}"
            times.append(t)
            api_calls = b.driver.execute_script(
                "return performance.getEntriesByType('resource')"
                ".filter(e => new URL(e.name).pathname.match(/^\\/(api|v1)\\//)).length")
        results.append((route, times, api_calls))
    return results


def main(argv):
    fx = load()
    mode = argv[1] if len(argv) > 1 else "suite"
    if mode == "suite":
        failed = run_suite(fx, argv[2:])
        shots = os.environ.get("HELIXFLOW_CONSOLE_SCREENSHOTS")
        if shots:
            print(f"screenshots in {shots}")
        if failed:
            print(f"FAILED: {', '.join(failed)}")
            return 1
    elif mode == "loadtime":
        limit_ms = float(getattr(fx, "load_limit_ms", 1000))
        rounds = int(getattr(fx, "load_rounds", 3))
        rows, results = page_loads(fx, rounds)
        print(f"full page loads, navigationStart -> data-ready, {rounds} rounds, tenant with {rows} functions:")
        print(f"  {'page':<28} {'median ms':>10} {'min ms':>8} {'max ms':>8} {'API calls':>10}")
        slow = []
        for route, times, calls in results:
            med = statistics.median(times)
            print(f"  {'#/' + route:<28} {med:>10.0f} {min(times):>8.0f} {max(times):>8.0f} {calls:>10}")
            if med >= limit_ms:
                slow.append(f"#/{route} {med:.0f} ms")
        # One list request per page, never one per row (the page with 100 functions).
        chatty = [f"#/{route} ({calls})" for route, _, calls in results if calls > MAX_API_CALLS]
        if chatty:
            print(f"FAILED: more than {MAX_API_CALLS} API requests to load: {', '.join(chatty)}")
            return 1
        if slow:
            print(f"FAILED: slower than {limit_ms:.0f} ms (median): {', '.join(slow)}")
            return 1
    else:
        print(f"unknown mode {mode!r}: suite | loadtime")
        return 2
    print("OK")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
