"""The console's browser tests. Each `test_*(b, fx)` drives one Browser (harness.py) with
the seeded node described by `fx` (fixture.py); the runner (__main__.py) checks the
browser's console and network after each one."""

import json
import re

from selenium.webdriver.support.ui import Select

# Buttons that change something. A viewer must see none of them; the pattern also
# catches write buttons added later under the same naming (verb first).
WRITE_ACTION = re.compile(
    r"^(deploy|delete|flip|rollback|save|create|revoke|replay|push|set|invoke|send|run|classify|embed|upload|edit|update|remove|add|preload|open-tenant|limit)")


def fetch_json(b, method, path, credential, body=None):
    """A same-origin request from the page, with `credential`: (status, parsed body)."""
    return b.driver.execute_async_script(
        """
        const [method, path, credential, body, done] = arguments;
        const opts = {method, headers: {authorization: `Bearer ${credential}`}, cache: 'no-store'};
        if (body !== null) { opts.body = JSON.stringify(body); opts.headers['content-type'] = 'application/json'; }
        fetch(path, opts).then(async r => done([r.status, await r.text()])).catch(e => done([0, String(e)]));
        """, method, path, credential, body)


def page_text(b):
    return b.driver.execute_script("return document.body.innerText")


def assert_no_markup_ran(b):
    """Nothing a tenant wrote became markup: no <img src=x>, no script outside the app's own."""
    bad = b.driver.execute_script("""
        return {
          imgs: document.querySelectorAll('img[src="x"], img[onerror]').length,
          scripts: [...document.scripts].filter(s => !s.src.endsWith('/console/js/app.js')).length,
          handlers: [...document.querySelectorAll('*')].filter(e => [...e.attributes].some(a => a.name.startsWith('on'))).length,
          alerted: window.__hfAlerted || 0,
        };""")
    assert bad == {"imgs": 0, "scripts": 0, "handlers": 0, "alerted": 0}, f"tenant-written markup became live: {bad}"


# ---- the tests ----

def test_sign_in(b, fx):
    """A refused key shows the API's reason and stays on the sign-in page; a good one signs in."""
    b.sign_out()
    b.screenshot("login")
    b.expect_failure(r"/api/v1/whoami$", 401, method="GET")
    b.find("#credential").send_keys("hfk_000000000000_not-a-key-of-this-node-at-all-000000")
    b.click("login")
    b.wait(lambda: "refused" in b.text(".login-error"), "the refusal on the sign-in page")
    assert b.ready == "login", b.ready
    assert b.driver.execute_script("return sessionStorage.length") == 0, "a refused credential was kept"
    b.check_clean()

    route = b.sign_in(fx.keys["developer"], expect_route="functions")
    role = b.find("[data-role]").get_attribute("data-role")
    assert role == "developer", role
    # The credential lives in session storage only: not in the URL, not in a cookie.
    assert fx.keys["developer"] not in b.driver.current_url
    assert b.driver.get_cookies() == [], b.driver.get_cookies()
    assert b.driver.execute_script("return localStorage.length") == 0
    # A reload keeps the session (same tab).
    b.open("functions", ready="functions")
    assert route == "functions"


def test_deploy_by_upload_and_invoke(b, fx):
    """A developer deploys hello.wasm through the upload form (progress bar to 100 %), sees
    it listed, opens it and invokes it from the invoke playground."""
    b.sign_in(fx.keys["developer"], expect_route="functions")
    name = "uploaded-hello"
    b.find("#deploy-name").send_keys(name)
    b.find("#deploy-file").send_keys(fx.upload)
    b.click("deploy")
    ok = b.find(f'#deploy-result .deploy-ok[data-function="{name}"]', timeout=60)
    assert ok.get_attribute("data-version") == "1", ok.get_attribute("outerHTML")
    bar = b.find("#deploy-progress")
    assert bar.get_attribute("value") == "100", f"progress bar at {bar.get_attribute('value')}"
    b.find(f'tr[data-row="{name}"]')
    b.screenshot("functions-deployed")

    b.find(f'tr[data-row="{name}"] a[data-link="function"]').click()
    b.wait_ready("functions/:name")
    assert b.find(f'.view-function[data-function="{name}"]')
    b.find('tr[data-row="live"]')  # the alias the form set
    b.screenshot("function-detail")

    b.click("invoke-function")
    b.wait_ready("playground/invoke")
    assert b.find("#invoke-function").get_attribute("value") == name
    status = invoke_function(b, name, trigger="http", path="/", payload="")
    body = b.text("#invoke-body")
    assert status == 200 and "hello" in body.lower(), (status, body)
    assert b.text("#invoke-request-id") not in ("", "\u2014"), "no request id shown"
    b.screenshot("playground-invoke")


def invoke_function(b, name, trigger="http", path=None, payload=None):
    """Runs `name` from the invoke playground (already open); returns the HTTP status."""
    fn = b.find("#invoke-function")
    if fn.tag_name == "select":
        if fn.get_attribute("value") != name:
            Select(fn).select_by_value(name)
    elif fn.get_attribute("value") != name:
        fn.clear()
        fn.send_keys(name)
    # The page preselects the trigger from the function's exports: wait for that first.
    b.wait(lambda: b.text("#invoke-handlers").strip(), "the function's handlers")
    Select(b.find("#invoke-trigger")).select_by_value(trigger)
    if path is not None:
        box = b.find("#invoke-path")
        box.clear()
        box.send_keys(path)
    if payload is not None:
        box = b.find("#invoke-payload")
        box.clear()
        box.send_keys(payload)
    b.click("invoke")
    b.wait(lambda: b.find("#invoke-result").get_attribute("data-state") in ("done", "error"),
           "the invocation's result", timeout=60)
    assert b.find("#invoke-result").get_attribute("data-state") == "done", b.text("#invoke-result")
    return int(b.find("#invoke-status").get_attribute("data-status"))


def test_chat_streams_in_playground(b, fx):
    """The chat playground streams an answer: text appears before the stream ends, then
    data-state="done", with TTFT and tokens/s shown."""
    b.sign_in(fx.keys["developer"])
    b.go("playground/chat")
    # The model picker, max tokens and temperature are all required (a missing one fails).
    model = b.find("#chat-model").get_attribute("value")
    assert model == fx.chat_model, f"the chat model picker shows {model!r}, not {fx.chat_model!r}"
    for name, value in (("chat-max-tokens", "24"), ("chat-temperature", "0")):
        box = b.find(f"#{name}")
        box.clear()
        box.send_keys(value)
        assert box.get_attribute("value") == value, f"#{name} holds {box.get_attribute('value')!r}, not {value!r}"
    box = b.find("#chat-input")
    box.clear()
    box.send_keys("Name three colours of the rainbow.")
    # Record, in the page, every length the answer has while it streams.
    b.driver.execute_script("""
        const o = document.getElementById('chat-output');
        window.__hfChat = [];
        new MutationObserver(() => {
          if (o.dataset.state !== 'streaming') return;
          const stat = (id) => { const e = document.getElementById(id); return e ? e.textContent : ''; };
          window.__hfChat.push([o.textContent.length, stat('chat-ttft'), stat('chat-tps')]);
        }).observe(o, { childList: true, subtree: true, characterData: true, attributes: true });""")
    b.click("send-chat")
    b.wait(lambda: b.find("#chat-output").get_attribute("data-state") in ("done", "error", "stopped"),
           "the end of the chat stream", timeout=240)
    state = b.find("#chat-output").get_attribute("data-state")
    assert state == "done", f"the chat ended {state}: {page_text(b)[-600:]}"
    seen = [r for r in b.driver.execute_script("return window.__hfChat") if r[0] > 0]
    partials = sorted(set(r[0] for r in seen))
    final = b.text("#chat-output")
    assert final.strip(), "an empty answer"
    assert len(partials) >= 2 and partials[0] < len(final), \
        f"the answer did not arrive in pieces while streaming: lengths {partials}, final {len(final)}"
    # TTFT and tokens/s are shown as the answer streams, not only at the end.
    assert re.search(r"\d", seen[0][1]), f"no TTFT when the first token showed: {seen[0]}"
    assert any(re.search(r"\d", r[2]) for r in seen), f"no tokens/s while streaming: {seen}"
    stats = b.text("#chat-stats")
    ttft, tps = b.text("#chat-ttft"), b.text("#chat-tps")
    assert re.search(r"\d", ttft) and re.search(r"\d", tps), f"TTFT / tokens/s not shown: {stats!r}"
    print(f"  chat answer ({len(final)} chars in {len(partials)} steps, TTFT {ttft}, {tps} tokens/s): {final[:60]!r}...")
    b.screenshot("playground-chat")


def test_embeddings_similarity(b, fx):
    """The embeddings playground embeds four sentences (two about cats, two about
    markets) and shows their 4x4 cosine similarity: 1.00 on the diagonal, symmetric,
    the two cat sentences closer to each other than to either market sentence."""
    b.sign_in(fx.keys["developer"])
    b.go("playground/embeddings")
    model = b.find("#embed-model")
    Select(model).select_by_value(fx.embed_model)
    sentences = [
        "A cat is sleeping on the sofa.",
        "The kitten purrs and chases a ball of yarn.",
        "Stock markets fell sharply this morning.",
        "Investors sold shares as interest rates rose.",
    ]
    box = b.find("#embed-input")
    box.clear()
    box.send_keys("\n".join(sentences))
    b.click("run-embeddings")
    b.wait(lambda: b.find("#embed-result").get_attribute("data-state") in ("done", "error"),
           "the embeddings result", timeout=60)
    assert b.find("#embed-result").get_attribute("data-state") == "done", b.text("#embed-result")
    assert b.text("#embed-count") == "4", b.text("#embed-count")
    assert int(b.text("#embed-dims")) > 0, b.text("#embed-dims")
    cells = b.driver.execute_script("""
        return [...document.querySelectorAll('table#similarity td[data-i][data-j]')]
          .map(td => [Number(td.dataset.i), Number(td.dataset.j), td.textContent, td.title]);""")
    assert len(cells) == 16, f"a {len(cells)}-cell matrix for 4 sentences: {cells}"
    shown, exact = {}, {}
    for i, j, text, title in cells:
        shown[i, j] = text.strip()
        exact[i, j] = float(title.rsplit(":", 1)[1])  # "i · j: 0.1234", 4 decimals
    assert sorted(shown) == [(i, j) for i in range(4) for j in range(4)], sorted(shown)
    rows = [[shown[i, j] for j in range(4)] for i in range(4)]
    for i in range(4):
        assert shown[i, i] == "1.00", f"diagonal ({i}, {i}) is {shown[i, i]}: {rows}"
        for j in range(4):
            assert shown[i, j] == shown[j, i] and abs(exact[i, j] - exact[j, i]) < 1e-3, \
                f"not symmetric at ({i}, {j}): {rows}"
    cats = exact[0, 1]
    across = max(exact[i, j] for i in (0, 1) for j in (2, 3))
    assert cats > across, f"cat-cat similarity {cats} is not above cat-market {across}: {rows}"
    print(f"  similarity: {rows}")
    b.screenshot("playground-embeddings")


def test_classify_image(b, fx):
    """The image classification playground uploads coffee.png to classify-image and shows
    its top-5 ImageNet labels, `espresso` first."""
    c = fx.classify
    b.sign_in(fx.keys["developer"])
    b.go("playground/classify")
    fn = b.find("#classify-function")
    if fn.tag_name == "select":
        Select(fn).select_by_value(c["function"])
    else:
        fn.clear()
        fn.send_keys(c["function"])
    b.find("#image-file").send_keys(c["image"])
    b.find("#image-preview")  # shown once a picture is picked
    b.click("classify")
    b.wait(lambda: b.find("#classify-result").get_attribute("data-state") in ("done", "error"),
           "the classification", timeout=60)
    assert b.find("#classify-result").get_attribute("data-state") == "done", b.text("#classify-result")
    labels = [r.get_attribute("data-row") for r in b.all("#classify-table tbody tr[data-row]")]
    assert 1 <= len(labels) <= 5, labels
    assert labels[0] == c["top"], f"top label {labels[0]!r}, expected {c['top']!r}: {labels}"
    assert b.text("#classify-top") == c["top"], b.text("#classify-top")
    assert b.text("#classify-model") == c["model"], b.text("#classify-model")
    print(f"  top 5: {labels}")
    b.screenshot("playground-classify")


def test_create_key_shown_once(b, fx):
    """A tenant admin creates a key: its secret is shown once, it works, it is gone on
    reload; revoking it stops it."""
    b.sign_in(fx.keys["admin"])
    b.go("keys")
    # The name is the tenant's own text: it must show as text.
    key_name = "console-test " + fx.xss_texts[-1]
    b.find("#key-name").send_keys(key_name)
    Select(b.find("#key-role")).select_by_value("viewer")
    b.click("create-key")
    secret = b.find("#new-key-secret .secret-value").text.strip()
    assert re.fullmatch(r"hfk_[0-9a-f]{12}_\S+", secret), secret
    prefix = secret.split("_")[1]
    assert key_name in b.text(f'tr[data-row="{prefix}"]'), b.text(f'tr[data-row="{prefix}"]')
    assert key_name in b.text("#new-key-secret")
    assert_no_markup_ran(b)
    b.screenshot("keys-created")
    status, body = fetch_json(b, "GET", "/api/v1/whoami", secret)
    assert status == 200 and json.loads(body)["role"] == "viewer", (status, body)

    b.open("keys", ready="keys")
    assert secret not in b.driver.page_source, "the secret is still on the page after a reload"
    assert not b.all("#new-key-secret")

    b.click("revoke-key", within=f'tr[data-row="{prefix}"]')
    b.click("confirm", within="dialog.modal")
    b.wait(lambda: not b.all(f'tr[data-row="{prefix}"] [data-action="revoke-key"]'), "the key shown revoked")
    b.expect_failure(r"/api/v1/whoami$", 401, method="GET")
    status, _ = fetch_json(b, "GET", "/api/v1/whoami", secret)
    assert status == 401, f"a revoked key answered {status}"


def test_replay_failed_event(b, fx):
    """The failed event is listed with its error and payload (as text); Replay re-drives it."""
    ev = fx.failed_event
    b.sign_in(fx.keys["developer"])
    b.go("events?status=failed", ready="events")
    row = f'tr[data-row="{ev["id"]}"]'
    b.find(row)
    assert "ChaosError" in b.text(row), b.text(row)
    b.click("event-detail", within=row)
    payload = b.find(f'tr[data-detail="{ev["id"]}"] [data-field="payload"]').text
    for t in ev.get("payload_contains", []):
        assert t in payload, f"{t!r} not shown as text in {payload!r}"
    assert_no_markup_ran(b)
    b.screenshot("events-failed")
    b.click("replay-event", within=row)
    new_id = b.find(f"{row} .replay-result").get_attribute("data-replay-id")
    assert new_id and new_id != ev["id"], new_id
    status, body = fetch_json(b, "GET", f"/api/v1/tenants/{fx.tenant}/events/{ev['id']}", fx.keys["developer"])
    assert status == 200 and json.loads(body).get("replayed_as") == new_id, (status, body)


def test_viewer_sees_no_write_buttons(b, fx):
    """A viewer sees no write action on any page it can open, and the pages it opens make
    no request its role cannot (the runner fails on any 4xx)."""
    b.sign_in(fx.keys["viewer"])
    role = b.find("[data-role]").get_attribute("data-role")
    assert role == "viewer", role
    routes = b.nav_routes()
    assert "functions" in routes, routes
    assert "keys" not in routes, f"keys (manage) offered to a viewer: {routes}"
    pages = routes + [f"functions/{fx.deployed}", f"functions/{fx.xss_function}", f"models/{fx.chat_model}",
                      "events?status=failed"]
    seen = {}
    for route in pages:
        ready = re.sub(r"^(functions|models)/.*", r"\1/:name", route.split("?")[0])
        b.go(route, ready=ready)
        # The page loaded (a failed load would show no write buttons trivially).
        assert not b.all("main .error-box"), f"#/{route} failed to load for a viewer: {b.text('main .error-box')}"
        # No write button at all, shown or hidden (write actions are not rendered).
        writes = b.driver.execute_script(
            "return [...document.querySelectorAll('[data-action]')].map(e => e.dataset.action)"
            ".filter(a => new RegExp(arguments[0]).test(a));", WRITE_ACTION.pattern)
        assert not writes, f"#/{route} renders write actions to a viewer: {writes}"
        uploads = b.driver.execute_script(
            "return [...document.querySelectorAll('input[type=file]:not(:disabled)')].map(e => e.id || e.name || '?');")
        assert not uploads, f"#/{route} offers an upload to a viewer: {uploads}"
        # No editable text area, but for filter/search boxes.
        editable = b.driver.execute_script(
            "return [...document.querySelectorAll('textarea:not([readonly])')]"
            ".filter(e => !e.classList.contains('filter') && !/filter|search/i.test(`${e.name} ${e.id}`))"
            ".map(e => e.id || e.name || '?');")
        assert not editable, f"#/{route} offers an editable text area to a viewer: {editable}"
        seen[route] = b.actions()
        b.screenshot("viewer-" + re.sub(r"[^a-z0-9]+", "-", route.lower()).strip("-"))
    print(f"  viewer's actions per page: {seen}")
    # A page that needs more than read is refused, not rendered.
    b.go("keys")
    b.find('[data-error-code="forbidden"]')
    # And the API itself refuses the viewer's writes (the UI only hides them).
    b.expect_failure(rf"/api/v1/tenants/{re.escape(fx.tenant)}/functions/{re.escape(fx.deployed)}$", 403, method="DELETE")
    status, body = fetch_json(b, "DELETE", f"/api/v1/tenants/{fx.tenant}/functions/{fx.deployed}", fx.keys["viewer"])
    assert status == 403, (status, body)


def test_escaping(b, fx):
    """Markup a function printed into its logs shows as text: on its page's log tail and in
    the invoke playground's captured logs."""
    b.sign_in(fx.keys["admin"])
    b.go(f"functions/{fx.xss_function}", ready="functions/:name")
    logs = b.find("#logs")
    b.wait(lambda: all(t in logs.text for t in fx.xss_texts), "the markup shown as text in the log tail")
    assert_no_markup_ran(b)
    b.scroll_to("#logs")
    b.screenshot("escaping-logs", top=False)

    b.go(f"playground/invoke?function={fx.xss_function}", ready="playground/invoke")
    status = invoke_function(b, fx.xss_function, trigger="event", payload="print " + " ".join(fx.xss_texts))
    assert status == 200, status
    b.wait(lambda: all(t in b.text("#invoke-logs") for t in fx.xss_texts), "the markup as text in the captured logs")
    assert_no_markup_ran(b)
    b.screenshot("escaping-invoke")


def test_main_pages(b, fx):
    """Every page in the navigation renders (tenant admin, then platform admin); a screenshot of each."""
    for who, key in (("tenant-admin", fx.keys["admin"]), ("platform-admin", fx.platform_key)):
        b.sign_in(key)
        routes = b.nav_routes()
        assert routes, f"no navigation for the {who}"
        for route in routes:
            b.go(route)
            assert not b.all("main .error-box"), f"#/{route}: {b.text('main .error-box')}"
            assert_no_markup_ran(b)
            b.screenshot(f"{who}-" + re.sub(r"[^a-z0-9]+", "-", route.lower()).strip("-"))
        print(f"  {who}: {', '.join(routes)}")
    # The detail pages: a function, a model.
    b.go(f"functions/{fx.deployed}", ready="functions/:name")
    b.screenshot("function-hello")
    b.go(f"models/{fx.chat_model}", ready="models/:name")
    assert not b.all("main .error-box"), b.text("main .error-box")
    b.screenshot("model-detail")


SUITE = [
    test_sign_in,
    test_deploy_by_upload_and_invoke,
    test_chat_streams_in_playground,
    test_embeddings_similarity,
    test_classify_image,
    test_create_key_shown_once,
    test_replay_failed_event,
    test_viewer_sees_no_write_buttons,
    test_escaping,
    test_main_pages,
]
