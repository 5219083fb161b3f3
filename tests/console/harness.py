"""The browser harness of the console tests: headless Chromium driven by Selenium.

One `Browser` per run (one Chromium, one tab). It signs in the way a person does (the
credential typed into the sign-in form), waits for `<html data-ready="{route}">` (the
console sets it once a view has rendered), saves screenshots, and after every test
checks the browser itself: no console error (a SEVERE browser log entry) and no failed
request (from Chromium's performance log: a response with status >= 400, or a request
that failed on the network), except the ones a test declares with `expect_failure`: each
declaration allows ONE failed request (and Chromium's console line about it), made after
it, and fails the test if that request never fails. At start-up the Browser proves these
checks work: a console.error and a 404 made on purpose must be reported.

Inputs (environment): HELIXFLOW_CHROMIUM, HELIXFLOW_CHROMEDRIVER (scripts/lib.sh
ensure_browser), HELIXFLOW_CONSOLE_SCREENSHOTS (where screenshots go; created).
"""

import json
import os
import re
import time

from selenium import webdriver
from selenium.common.exceptions import TimeoutException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

# Records, in the page's own clock, when <html data-ready> is set (performance.now(),
# i.e. milliseconds since navigationStart): installed before any page script runs.
READY_PROBE = """
(() => {
  window.__hfReady = [];
  window.__hfAlerted = 0;
  window.alert = window.confirm = window.prompt = () => { window.__hfAlerted += 1; };
  const note = () => {
    const v = document.documentElement && document.documentElement.dataset.ready;
    if (v) window.__hfReady.push([v, performance.now()]);
  };
  const start = () => new MutationObserver(note)
    .observe(document.documentElement, { attributes: true, attributeFilter: ['data-ready'] });
  if (document.documentElement) start();
  else document.addEventListener('readystatechange', start, { once: true });
})();
"""


def required_env(name):
    value = os.environ.get(name)
    if not value:
        raise SystemExit(f"{name} is not set: run the tests with scripts/test.sh (scripts/lib.sh ensure_browser/ensure_selenium)")
    return value


class BrowserProblem(AssertionError):
    """A console error or a failed request the test did not expect."""


class Allowance:
    """One declared failure (Browser.expect_failure): a request and its console line."""

    def __init__(self, url, status, method):
        self.url, self.status, self.method = url, status, method
        self.request_used = self.console_used = False

    def matches(self, url, status, method):
        return bool(self.url.search(url or "")) and self.status in (None, status) \
            and (self.method is None or self.method == (method or "").upper())

    def __str__(self):
        return f"{self.method or 'any method'} /{self.url.pattern}/ {self.status or 'any status'}"


class Browser:
    def __init__(self, base_url, screenshots=None, timeout=20):
        self.base = base_url.rstrip("/")
        self.timeout = timeout
        self.screenshots = screenshots or os.environ.get("HELIXFLOW_CONSOLE_SCREENSHOTS")
        if self.screenshots:
            os.makedirs(self.screenshots, exist_ok=True)
        opts = webdriver.ChromeOptions()
        opts.binary_location = required_env("HELIXFLOW_CHROMIUM")
        for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                    "--window-size=1440,900", "--no-first-run", "--disable-extensions",
                    "--disable-background-networking", "--disable-component-update",
                    "--disable-default-apps", "--disable-sync", "--hide-scrollbars"):
            opts.add_argument(arg)
        opts.set_capability("goog:loggingPrefs", {"browser": "ALL", "performance": "ALL"})
        service = Service(executable_path=required_env("HELIXFLOW_CHROMEDRIVER"))
        self.driver = webdriver.Chrome(options=opts, service=service)
        self.driver.set_window_size(1440, 900)
        self.driver.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument", {"source": READY_PROBE})
        self.expected = []  # the current test's Allowance-s (expect_failure), one failure each
        self.requests = 0
        self._sent = {}  # requestId -> (url, method, timestamp) of every request seen so far
        try:
            self._canary()
        except BaseException:
            self.driver.quit()
            raise

    def _canary(self):
        """Proves the checks can fail: a console error and a failed request (404) made on
        purpose in the page must both be reported by problems(); then they are dropped."""
        self.driver.get(f"{self.base}/console")
        self.problems()  # whatever loading the sign-in page did is not the canary's
        self.driver.execute_script("console.error('hf-canary');")
        status = self.driver.execute_async_script(
            "const done = arguments[0];"
            "fetch('/console/nope', {cache: 'no-store'}).then(r => done(r.status)).catch(e => done(String(e)));")
        assert status == 404, f"canary: GET /console/nope answered {status!r}, not 404"
        want = {"console error": lambda p: p.startswith("console error:") and "hf-canary" in p,
                "failed request": lambda p: p.startswith("failed request: HTTP 404 ") and p.endswith("/console/nope")}
        found = []
        deadline = time.monotonic() + 10
        while True:
            found += self.problems()
            missing = [k for k, hit in want.items() if not any(hit(p) for p in found)]
            if not missing or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        assert not missing, f"canary: the harness did not report the {' and '.join(missing)} made on purpose: {found}"
        # Besides the canary: Chromium's own console line about the 404. Anything else is real.
        other = [p for p in found if not any(hit(p) for hit in want.values()) and "/console/nope" not in p]
        assert not other, f"the console's sign-in page is not clean: {other}"

    def quit(self):
        self.driver.quit()

    # ---- checks of the browser itself ----

    def expect_failure(self, url_pattern, status=None, method=None):
        """Declares that the NEXT request whose URL matches `url_pattern` (and method, status
        when given) fails: one such failure is allowed, once, and it must happen before
        the test's next check_clean(). The logs are checked first, so the allowance covers
        nothing that happened before this call."""
        self.check_clean()
        self.expected.append(Allowance(re.compile(url_pattern), status, method and method.upper()))

    def _allow_request(self, url, method, status):
        """Consumes the first unused allowance matching a failed request; False if none."""
        for a in self.expected:
            if not a.request_used and a.matches(url, status, method):
                a.request_used = True
                return True
        return False

    def _allow_console(self, url, status):
        """Chromium's console line about a failed request an allowance covers (once)."""
        for a in self.expected:
            # (The console line names no method; it may come before the request's own
            # events, which chromedriver's performance log delivers late.)
            if not a.console_used and a.matches(url, status, a.method):
                a.console_used = True
                return True
        return False

    def problems(self):
        """Drains the browser's logs; returns the unexpected errors and failed requests."""
        found = []
        for entry in self.driver.get_log("performance"):
            msg = json.loads(entry["message"])["message"]
            method, params = msg.get("method"), msg.get("params", {})
            rid = params.get("requestId")
            if method == "Network.requestWillBeSent":
                req = params["request"]
                self._sent[rid] = (req["url"], req.get("method"), params.get("timestamp"))
                self.requests += 1
            elif method == "Network.responseReceived":
                resp = params["response"]
                verb = self._sent.get(rid, (None, None, None))[1]
                if resp["status"] >= 400 and not self._allow_request(resp["url"], verb, resp["status"]):
                    found.append(f"failed request: HTTP {resp['status']} {verb or '?'} {resp['url']}")
            elif method == "Network.loadingFailed":
                url, verb, sent_at = self._sent.get(rid, ("?", None, None))
                if params.get("canceled"):
                    # Chromium reports a streamed (SSE) chat completion as canceled even
                    # when the page read it to the end: never a failure.
                    if re.search(r"/v1/chat/completions(\?|$)", url):
                        continue
                    # Any other cancel within ~2 s of the request is the harness leaving
                    # the page (open() goes through about:blank; a hash change drops the
                    # view, whose onLeave aborts what it had in flight, e.g. a log-tail
                    # poll): not the console's fault. One pending longer was hanging.
                    pending = (params["timestamp"] - sent_at) if sent_at is not None and "timestamp" in params else None
                    if pending is not None and pending <= 2.0:
                        continue
                    pending_text = f"{pending:.1f} s" if pending is not None else "an unknown time"
                    found.append(f"failed request: canceled after {pending_text} pending {verb or '?'} {url}")
                    continue
                if not self._allow_request(url, verb, None):
                    found.append(f"failed request: {params.get('errorText')} {verb or '?'} {url}"
                                 f"{' (blocked: ' + params['blockedReason'] + ')' if params.get('blockedReason') else ''}")
        for entry in self.driver.get_log("browser"):
            if entry["level"] != "SEVERE":
                continue
            text = entry["message"]
            # Chromium logs every 4xx/5xx answer as a console error too: the one of an
            # expected failure is expected.
            m = re.match(r"(\S+) - Failed to load resource: the server responded with a status of (\d+)", text)
            if m and self._allow_console(m.group(1), int(m.group(2))):
                continue
            found.append(f"console error: {text}")
        return found

    def check_clean(self):
        """Drains the logs: fails on any unexpected problem, or on an expect_failure that
        did not happen; then forgets the test's allowances."""
        # chromedriver hands out the performance log (the requests) later than the
        # console's: drain, let it catch up, drain again.
        found = self.problems()
        time.sleep(0.3)
        found += self.problems()
        found += [f"expected failure did not happen: {a}" for a in self.expected if not a.request_used]
        self.expected = []
        if found:
            raise BrowserProblem("the browser reported:\n  " + "\n  ".join(found))

    # ---- navigation ----

    @property
    def ready(self):
        return self.driver.execute_script("return document.documentElement.dataset.ready || null")

    def wait(self, cond, what, timeout=None):
        try:
            return WebDriverWait(self.driver, timeout or self.timeout, poll_frequency=0.05).until(lambda d: cond())
        except TimeoutException:
            raise AssertionError(f"timed out after {timeout or self.timeout}s waiting for {what}"
                                 f" (data-ready={self.ready!r}, url={self.driver.current_url})") from None

    def wait_ready(self, route, timeout=None):
        self.wait(lambda: self.ready == route, f'<html data-ready="{route}">', timeout)

    def open(self, route="", ready=None):
        """Loads the console afresh (a full page load) at `#/route`; waits for `ready`.
        (Through about:blank: loading the same URL again would only be a fragment
        navigation. The tab's session storage, so the sign-in, stays.)"""
        self.driver.get("about:blank")
        self.driver.get(f"{self.base}/console" + (f"#/{route}" if route else ""))
        if ready:
            self.wait_ready(ready)

    def go(self, route, ready=None):
        """Navigates inside the console (hash change) to `#/route`; waits for `ready` (default: route).
        Already there: reloads the page instead (the same hash fires no hashchange)."""
        if self.driver.execute_script("return window.location.hash") == f"#/{route}":
            self.open(route, ready or route)
            return
        self.driver.execute_script(
            "delete document.documentElement.dataset.ready; window.location.hash = arguments[0];", f"#/{route}")
        self.wait_ready(ready or route)

    def sign_out(self):
        """Forgets the credential (session storage) and shows the sign-in page."""
        if not self.driver.current_url.startswith(self.base):
            self.driver.get(f"{self.base}/console")
        self.driver.execute_script("sessionStorage.clear();")
        self.open(ready="login")

    def sign_in(self, credential, expect_route=None):
        """Types `credential` into the sign-in form and submits it; waits for the first view."""
        self.sign_out()
        box = self.find("#credential")
        box.clear()
        box.send_keys(credential)
        self.click("login")
        self.wait(lambda: self.ready not in (None, "login"), "the first view after sign-in")
        if expect_route:
            self.wait_ready(expect_route)
        return self.ready

    def nav_routes(self):
        """The routes in the navigation (what this role may open), in order."""
        return self.driver.execute_script(
            "return [...document.querySelectorAll('nav a[data-nav]')]"
            ".map(a => a.getAttribute('href')).filter(h => h && h.startsWith('#/')).map(h => h.slice(2));")

    # ---- elements ----

    def find(self, css, timeout=None):
        return self.wait(lambda: self._visible(css), f"element {css}", timeout)

    def _visible(self, css):
        for el in self.driver.find_elements(By.CSS_SELECTOR, css):
            if el.is_displayed():
                return el
        return None

    def all(self, css):
        return self.driver.find_elements(By.CSS_SELECTOR, css)

    def click(self, action, within=None, timeout=None):
        """Clicks the visible, enabled button with data-action=`action` (inside `within` CSS)."""
        css = f'{within + " " if within else ""}[data-action="{action}"]'
        el = self.wait(lambda: (lambda e: e if e is not None and e.is_enabled() else None)(self._visible(css)),
                       f"enabled {css}", timeout)
        self.driver.execute_script("arguments[0].scrollIntoView({block: 'center'});", el)
        el.click()
        return el

    def actions(self):
        """data-action values of every visible button/link on the page."""
        return sorted({el.get_attribute("data-action") for el in self.all("[data-action]") if el.is_displayed()})

    def text(self, css):
        return self.find(css).text

    def scroll_to(self, css):
        self.driver.execute_script("arguments[0].scrollIntoView({block: 'center'});", self.find(css))

    def screenshot(self, name, top=True):
        """Saves `name`.png (the page scrolled to the top unless `top` is false)."""
        if not self.screenshots:
            return None
        if top:
            self.driver.execute_script("window.scrollTo(0, 0)")
        path = os.path.join(self.screenshots, f"{name}.png")
        # Let transitions (progress bars, toasts) settle a moment.
        time.sleep(0.15)
        self.driver.save_screenshot(path)
        print(f"  screenshot {path}", flush=True)
        return path
