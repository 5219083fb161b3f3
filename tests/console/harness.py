"""The browser harness of the console tests: headless Chromium driven by Selenium.

One `Browser` per run (one Chromium, one tab). It signs in the way a person does (the
credential typed into the sign-in form), waits for `<html data-ready="{route}">` (the
console sets it once a view has rendered), saves screenshots, and after every test
checks the browser itself: no console error (a SEVERE browser log entry) and no failed
request (from Chromium's performance log: a response with status >= 400, or a request
that failed on the network), except the ones a test declares with `expect_failure`.

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
        self.expected = []  # [(url regex, status or None)] for the current test
        self.requests = 0

    def quit(self):
        self.driver.quit()

    # ---- checks of the browser itself ----

    def expect_failure(self, url_pattern, status=None):
        """Declares that a request whose URL matches `url_pattern` may fail (with `status`)."""
        self.expected.append((re.compile(url_pattern), status))

    def _expected(self, url, status):
        return any(p.search(url or "") and (s is None or s == status) for p, s in self.expected)

    def problems(self):
        """Drains the browser's logs; returns the unexpected errors and failed requests."""
        found = []
        urls = {}
        for entry in self.driver.get_log("performance"):
            msg = json.loads(entry["message"])["message"]
            method, params = msg.get("method"), msg.get("params", {})
            if method == "Network.requestWillBeSent":
                urls[params["requestId"]] = params["request"]["url"]
                self.requests += 1
            elif method == "Network.responseReceived":
                resp = params["response"]
                urls[params["requestId"]] = resp["url"]
                if resp["status"] >= 400 and not self._expected(resp["url"], resp["status"]):
                    found.append(f"failed request: HTTP {resp['status']} {resp['url']}")
            elif method == "Network.loadingFailed":
                url = urls.get(params["requestId"], "?")
                # A request the page itself cancelled (an AbortController when a view is
                # left, e.g. a log tail) is not a failure.
                if params.get("canceled"):
                    continue
                if not self._expected(url, None):
                    found.append(f"failed request: {params.get('errorText')} {url}"
                                 f"{' (blocked: ' + params['blockedReason'] + ')' if params.get('blockedReason') else ''}")
        for entry in self.driver.get_log("browser"):
            if entry["level"] != "SEVERE":
                continue
            text = entry["message"]
            # Chromium logs every 4xx/5xx answer as a console error too: those of an
            # expected failure are expected.
            m = re.match(r"(\S+) - Failed to load resource: the server responded with a status of (\d+)", text)
            if m and self._expected(m.group(1), int(m.group(2))):
                continue
            found.append(f"console error: {text}")
        return found

    def check_clean(self):
        found = self.problems()
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
