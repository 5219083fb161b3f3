"""Browser tests of the HelixFlow console (/console): headless Chromium via Selenium.

Run by tests/e2e/console.rs against a real node it seeded; by hand:

    HELIXFLOW_CONSOLE_FIXTURE='{"url": ..., ...}' PYTHONPATH=tests python -m console suite|loadtime

(see `fixture.py` for the fixture's fields). Prints one line per test and `OK` last when
every test passed.
"""
