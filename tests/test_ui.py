"""The web page at / of --http (issue 15), in a real browser: Debian's
chromium, headless, driven by python3-selenium through chromium-driver.

What a user sees: the founding script's session and message appearing live
without a reload; a session's lanes with the console's own `send:` and
`reply:` lines, both legs' TLS and the capabilities; a message decoded with
its HTML rendered in a sandboxed frame and its attachment; a mail's script
and onerror handler that never run and a remote picture that loads only
when asked; no AUTH password on any page; the keyboard; the dark scheme;
relay, sink and replay modes and --loops 2. Every view is checked for
errors in the browser's console. And over plain HTTP: the page's headers
(CSP, ETag, 304) and the API's Host, Origin and --http-auth rules.

Each test saves a screenshot of its view into SMTPSCOPE_SCREENSHOTS (the
build folder's screenshots/ under ctest); the PNGs in docs/screenshots/
are these, made with SMTPSCOPE_SCREENSHOTS=docs/screenshots.

Needs chromium, chromium-driver and python3-selenium (`.ci/deps test`
installs them). Without them the tests fail, unless SMTPSCOPE_UI_SKIP=1
says skipping is allowed.
"""
import base64
import calendar
import http.server
import json
import os
import re
import shutil
import smtplib
import subprocess
import sys
import tempfile
import threading
import time
import unittest
import urllib.request
from email.message import EmailMessage
from email.utils import formataddr

import harness as h
from test_api import URL_RX, call, rich_message

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
SEED = os.path.join(os.path.dirname(os.path.abspath(__file__)), "seed_script.py")
SHOTS = os.environ.get("SMTPSCOPE_SCREENSHOTS",
                       os.path.join(tempfile.gettempdir(), "smtpscope-screenshots"))
SECRETS = [h.PASSWORD, base64.b64encode(f"\0{h.USER}\0{h.PASSWORD}".encode()).decode(),
           base64.b64encode(h.PASSWORD.encode()).decode()]

try:
    from selenium import webdriver
    from selenium.common.exceptions import TimeoutException
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import WebDriverWait
    MISSING = None
except ImportError as e:
    MISSING = f"python3-selenium ({e})"
if MISSING is None:
    absent = [p for p in (CHROMIUM, CHROMEDRIVER) if not os.access(p, os.X_OK)]
    if absent:
        MISSING = ", ".join(absent)


def setUpModule():
    if MISSING is None:
        return
    why = (f"the browser tests need chromium, chromium-driver and python3-selenium; missing: "
           f"{MISSING} (bash .ci/deps test installs them)")
    if os.environ.get("SMTPSCOPE_UI_SKIP") == "1":
        raise unittest.SkipTest(why + "; skipped because SMTPSCOPE_UI_SKIP=1")
    raise RuntimeError(why + "; SMTPSCOPE_UI_SKIP=1 allows skipping them")


_browser = None


def browser():
    """One headless chromium for the whole module (starting one takes
    seconds); each test leaves it on about:blank."""
    global _browser
    if _browser is None:
        o = webdriver.ChromeOptions()
        # --no-sandbox: chromium's sandbox refuses to run as root (CI does)
        for a in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                  "--window-size=1360,900", "--no-first-run", "--disable-extensions",
                  "--disable-background-networking", "--disable-component-update",
                  "--disable-sync", "--disable-default-apps", "--lang=en-US"):
            o.add_argument(a)
        o.binary_location = CHROMIUM
        o.set_capability("goog:loggingPrefs", {"browser": "ALL"})
        _browser = webdriver.Chrome(options=o, service=Service(CHROMEDRIVER))
        _browser.set_page_load_timeout(30)
    return _browser


def tearDownModule():
    if _browser is not None:
        _browser.quit()


class Remote:
    """A web server on 127.0.0.1 that records the paths asked of it (the
    "remote" side of a mail: nothing may reach it unless the user asks)."""

    def __init__(self):
        self.paths = []
        rec = self.paths

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                rec.append(self.path)
                png = base64.b64decode("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR4"
                                       "nGNgYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg==")
                self.send_response(200)
                self.send_header("Content-Type", "image/png")
                self.send_header("Content-Length", str(len(png)))
                self.end_headers()
                self.wfile.write(png)

            def log_message(self, *a):
                pass

        self.srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.srv.server_address[1]
        threading.Thread(target=self.srv.serve_forever, daemon=True).start()

    def stop(self):
        self.srv.shutdown()
        self.srv.server_close()


class UiCase(h.ScopeCase):
    def setUp(self):
        super().setUp()
        self.d = browser()
        self.d.get("about:blank")
        self.d.get_log("browser")  # what an earlier test left
        self.d.execute_cdp_cmd("Emulation.setEmulatedMedia", {"features": [
            {"name": "prefers-color-scheme", "value": "light"}]})

    def tearDown(self):
        self.d.get("about:blank")  # the page's event stream ends before smtpscope does
        self.d.get_log("browser")
        super().tearDown()

    def start(self, *args, upstream=None, mode="sink"):
        if mode == "sink":
            d = tempfile.mkdtemp(prefix="smtpscope-ui-")
            self.addCleanup(shutil.rmtree, d, True)
            self.scope = h.Scope("--sink", d, "--http", "127.0.0.1:0", *args, ca=False)
        elif mode == "relay":
            self.scope = h.Scope("--http", "127.0.0.1:0", *args, upstream=upstream)
        else:
            self.scope = h.Scope("--http", "127.0.0.1:0", *args, ca=False)
        line = self.scope.wait_for(URL_RX)
        self.port = int(re.search(URL_RX, line).group(1))
        self.base = f"http://127.0.0.1:{self.port}"

    def seed(self, user=h.USER, password=h.PASSWORD):
        """The founding script through smtpscope (STARTTLS, login, one mail)."""
        r = subprocess.run([sys.executable, SEED, "127.0.0.1", str(self.scope.port), user, password],
                           capture_output=True, timeout=60)
        self.assertEqual(r.returncode, 0, r.stderr.decode())

    def send(self, msg, rcpts=None):
        c = smtplib.SMTP("127.0.0.1", self.scope.port, timeout=20)
        data = msg.as_bytes(policy=msg.policy.clone(linesep="\r\n"))
        if rcpts is None:
            rcpts = [a.split("<")[-1].strip("> ") for f in ("To", "Cc") if msg[f]
                     for a in str(msg[f]).split(",")]
        c.sendmail(msg["From"].addresses[0].addr_spec, rcpts, data)
        c.quit()

    def open(self, path):
        self.d.get(self.base + path)
        self.wait(lambda d: d.execute_script("return document.readyState") == "complete")

    def wait(self, cond, timeout=15, what="the page"):
        try:
            return WebDriverWait(self.d, timeout, poll_frequency=0.05).until(cond)
        except TimeoutException:
            self.shot("failed-" + self.id().rsplit(".", 1)[-1])
            raise AssertionError(f"timed out waiting for {what}; the page says:\n"
                                 + self.d.find_element(By.TAG_NAME, "body").text[:3000])

    def click_live(self, css):
        """Clicks the element css names in a live list in one step inside
        the page: the list redraws as events come, and an element found
        first and clicked after may be gone by then."""
        self.wait(lambda d: d.execute_script(
            "const e = document.querySelector(arguments[0]); if (e) e.click(); return !!e;", css),
            what=css)

    def text_of(self, css):
        """The text of the first element css selects, as shown: read in
        one step inside the page, which a live view may draw again at any
        moment."""
        return self.d.execute_script(
            "const e = document.querySelector(arguments[0]); return e ? e.innerText : ''", css)

    def wait_text(self, css, text, timeout=15, nocase=False):
        fold = str.lower if nocase else str
        self.wait(lambda d: fold(text) in fold(self.text_of(css)), timeout, f"{text!r} in {css}")

    def wait_mail_from(self, addr=""):
        """smtplib's MAIL line in the lanes: Python 3.11 writes 'mail FROM:',
        3.13 'mail from:'."""
        self.wait_text("#lanes", "mail FROM:" + addr, nocase=True)

    def shot(self, name):
        os.makedirs(SHOTS, exist_ok=True)
        self.d.save_screenshot(os.path.join(SHOTS, name + ".png"))

    def console(self):
        return self.d.get_log("browser")

    def assert_console_clean(self):
        bad = [e for e in self.console() if e["level"] in ("SEVERE", "WARNING")]
        self.assertEqual(bad, [], "the browser's console has errors")

    def assert_no_secret(self):
        src = self.d.page_source
        for s in SECRETS:
            self.assertNotIn(s, src)

    def mark_page(self):
        """A mark on the window that a reload would lose."""
        self.d.execute_script("window.__smtpscopeMark = 42")

    def assert_not_reloaded(self):
        self.assertEqual(self.d.execute_script("return window.__smtpscopeMark"), 42,
                         "the page was loaded again")


class LiveTest(UiCase):
    def test_seed_session_and_message_appear_live(self):
        self.start()
        self.open("/")
        self.wait_text("#live", "live")
        self.wait(lambda d: "off" not in d.find_element(By.ID, "live").get_attribute("class"),
                  what="the live events to connect")
        self.assertIn("No session yet", self.text_of("#sessions-note"))
        self.mark_page()
        self.seed()
        # the row comes, and follows the session to its end
        self.wait_text("#sessions tr[data-id='1']", "relayed")
        row = self.text_of("#sessions tr[data-id='1']")
        self.assertIn("#1", row)
        self.assertIn("127.0.0.1:", row)
        self.assertIn("QUIT", row)
        self.assertEqual(len(self.d.find_elements(
            By.CSS_SELECTOR, "#sessions tr[data-id='1'] .lock.on")), 1)  # the client leg's TLS
        self.assert_not_reloaded()
        self.shot("sessions")

        # to the messages (inside the page), then a second run: its message comes live
        self.d.find_element(By.ID, "nav-messages").click()
        self.wait_text("#messages", "hello , today is a special day")
        self.assertEqual(len(self.d.find_elements(By.CSS_SELECTOR, "#messages tr")), 1)
        self.seed()
        self.wait(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#messages tr")) == 2,
                  what="the second message")
        self.assertIn("250 accepted", self.text_of("#messages tr"))
        self.assert_not_reloaded()
        self.assert_no_secret()
        self.assert_console_clean()
        self.shot("messages")

    def test_sessions_filter_and_keyboard(self):
        self.start()
        self.seed()
        c = smtplib.SMTP("127.0.0.1", self.scope.port, timeout=20)  # a session with no mail
        c.ehlo()
        c.quit()
        self.scope.wait_for(r"\[#2\] smtpscope: disconnect")
        self.open("/")
        self.wait(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#sessions tr")) == 2,
                  what="two sessions")
        body = self.d.find_element(By.TAG_NAME, "body")
        body.send_keys("j")
        self.assertEqual(self.d.find_element(By.CSS_SELECTOR, "tr.selected").get_attribute("data-id"), "2")
        body.send_keys("j")
        self.assertEqual(self.d.find_element(By.CSS_SELECTOR, "tr.selected").get_attribute("data-id"), "1")
        body.send_keys("k")
        self.assertEqual(self.d.find_element(By.CSS_SELECTOR, "tr.selected").get_attribute("data-id"), "2")
        body.send_keys(Keys.ENTER)
        self.wait(lambda d: d.current_url.endswith("/session/2"), what="/session/2")
        self.wait_text("h1", "Session #2")
        self.d.find_element(By.TAG_NAME, "body").send_keys(Keys.ESCAPE)
        self.wait(lambda d: d.current_url == self.base + "/", what="back to /")
        self.wait(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#sessions tr")) == 2)
        self.d.find_element(By.TAG_NAME, "body").send_keys("/")
        active = self.d.switch_to.active_element
        self.assertEqual(active.get_attribute("id"), "session-filter")
        active.send_keys("QUIT")
        self.wait(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#sessions tr")) == 2)
        # by state: #1 relayed a message, #2 sent none
        from selenium.webdriver.support.ui import Select
        Select(self.d.find_element(By.ID, "state-filter")).select_by_value("relayed")
        self.wait(lambda d: [r.get_attribute("data-id") for r in
                             d.find_elements(By.CSS_SELECTOR, "#sessions tr")] == ["1"])
        Select(self.d.find_element(By.ID, "state-filter")).select_by_value("closed")
        self.wait(lambda d: [r.get_attribute("data-id") for r in
                             d.find_elements(By.CSS_SELECTOR, "#sessions tr")] == ["2"])
        self.assert_console_clean()

    def test_dark_scheme(self):
        self.start()
        self.seed()
        self.d.execute_cdp_cmd("Emulation.setEmulatedMedia", {"features": [
            {"name": "prefers-color-scheme", "value": "dark"}]})
        self.open("/")
        self.wait_text("#sessions", "relayed")
        bg = self.d.execute_script("return getComputedStyle(document.documentElement).backgroundColor")
        rgb = [int(x) for x in re.findall(r"\d+", bg)[:3]]
        self.assertLess(sum(rgb), 200, bg)  # dark
        self.click_live("#sessions tr[data-id='1'] a")
        self.wait_mail_from()
        self.shot("session-dark")
        self.d.execute_cdp_cmd("Emulation.setEmulatedMedia", {"features": [
            {"name": "prefers-color-scheme", "value": "light"}]})
        bg = self.d.execute_script("return getComputedStyle(document.documentElement).backgroundColor")
        self.assertGreater(sum(int(x) for x in re.findall(r"\d+", bg)[:3]), 600, bg)
        self.assert_console_clean()


class SessionViewTest(UiCase):
    def test_session_lanes_tls_and_capabilities(self):
        self.up = h.Upstream()
        self.start("--explain", mode="relay", upstream=self.up)
        self.seed()
        self.scope.wait_for(r"\[#1\] smtpscope: disconnect")
        lines = self.scope.session_lines(1)
        mail = next(l for l in lines
                    if l.lower().startswith("send: 'mail from:<leehark@example.test>"))
        i = lines.index(mail)
        reply = next(l for l in lines[i:] if l.startswith("reply: b'250"))
        api = json.loads(call(self.port, "/api/v1/session/1")[2])
        version = api["TLS"]["Upstream"]["Version"]
        self.assertRegex(version, r"^TLSv1\.[23]$")

        self.open("/session/1")  # a deep link: the server answers it with the page
        self.wait_mail_from()
        # each line's text, lane and marks, as the page shows them
        rows = self.d.execute_script(
            "return [...document.querySelectorAll('#lanes .bubble')].map(b => ["
            "(b.querySelector('code.line') || {}).textContent || '', b.className,"
            "[...b.querySelectorAll('.mark')].map(m => m.textContent),"
            "b.parentNode.querySelector('.notes').textContent])")
        lane = {text: cls for text, cls, _, _ in rows}
        marks = {text: m for text, _, m, _ in rows}
        notes = {text: n for text, _, _, n in rows}
        self.assertIn(mail, lane)  # the console's own words, exactly
        self.assertIn(reply, lane)
        # the lanes: the client's command, the upstream's relayed reply,
        # smtpscope's own EHLO to the upstream and its own reply to STARTTLS
        self.assertIn("lane-client", lane[mail])
        self.assertIn("lane-upstream", lane[reply])
        ehlo = next(l for l in lines if l.startswith("upstream send: 'EHLO"))
        self.assertIn("lane-scope", lane[ehlo])
        starttls = next(l for l in lines if l.startswith("smtpscope reply: b'220 2.0.0"))
        self.assertIn("lane-scope", lane[starttls])
        self.assertIn("smtpscope's own", marks[starttls])
        # the AUTH line, redacted and marked
        auth = next(l for l in lines if l.startswith("send: 'AUTH PLAIN"))
        self.assertIn("[redacted; user=alice@example.test]", auth)
        self.assertIn("redacted", marks[auth])
        # every line of the session's console transcript is there, in order
        # (the message's content folded into one row)
        self.assertEqual([t for t, _, _, _ in rows if t],
                         [l for l in lines if not l.startswith(("  #", "send: b'"))])
        # learner notes beside the lines they explain: --explain's words
        # after a reply, and its notes of their own after the line before
        self.assertEqual(notes[reply], "250 = requested action done")
        self.assertEqual(notes[mail], "")
        tls_line = next(l for l in lines if l.startswith("smtpscope: TLS upstream:"))
        self.assertEqual(notes[tls_line],
                         "the upstream leg is encrypted from here on; smtpscope shows its plaintext")
        self.d.find_element(By.ID, "show-notes").click()  # hidden when not wanted
        self.assertFalse(self.d.find_element(By.CSS_SELECTOR, "#lanes .note").is_displayed())
        self.d.find_element(By.ID, "show-notes").click()
        # the API's JSON lines the page reads, with their notes, fit the schema
        import jsonschema
        with open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "docs",
                               "transcript.schema.json")) as f:
            schema = json.load(f)
        events = [json.loads(l) for l in
                  call(self.port, "/api/v1/session/1/transcript?format=json")[2].splitlines()]
        for ev in events:
            jsonschema.validate(ev, schema)
        self.assertIn("250 = requested action done", [e.get("note") for e in events])
        # both legs' TLS
        tls = self.text_of("#tls")
        self.assertIn(version, tls)
        self.assertIn(api["TLS"]["Upstream"]["Cipher"], tls)
        self.assertIn("CN=localhost", tls)
        self.assertIn("CN=smtpscope test ca", tls)
        self.assertIn(api["TLS"]["Client"]["Version"], tls)
        # the upstream certificate's validity, in the page's local time; the
        # client showed no certificate: no such row
        valid = self.d.execute_script(
            "return [...document.querySelectorAll('#tls .card.tls')].map(c => "
            "[...c.querySelectorAll('tr')].filter(r => r.querySelector('th').textContent === "
            "'Valid').map(r => r.querySelector('td').textContent))")
        up_tls = api["TLS"]["Upstream"]
        self.assertIsNotNone(up_tls["NotBefore"])

        def local(iso):
            offset = self.d.execute_script(
                "return -new Date(arguments[0]).getTimezoneOffset()", iso)
            t = calendar.timegm(time.strptime(iso, "%Y-%m-%dT%H:%M:%SZ")) + offset * 60
            return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(t))
        self.assertEqual(valid, [[], [f"{local(up_tls['NotBefore'])} – "
                                      f"{local(up_tls['NotAfter'])}"]])
        # the capabilities: the upstream's beside the client's; smtpscope
        # added STARTTLS for the client before its TLS
        up = self.d.find_elements(By.CSS_SELECTOR, "#caps-upstream .ehlo")
        self.assertEqual(len(up), 2)  # before and inside TLS
        self.assertIn("before TLS", up[0].text)
        self.assertIn("STARTTLS", up[0].text)
        self.assertIn("inside TLS", up[1].text)
        self.assertIn("AUTH LOGIN PLAIN", up[1].text)
        self.assertNotIn("STARTTLS", up[1].text)
        client = self.d.find_elements(By.CSS_SELECTOR, "#caps-client .ehlo")
        self.assertEqual(len(client), 2)
        added = client[0].find_elements(By.CSS_SELECTOR, "li.cap-diff")
        self.assertEqual([a.text.replace("+", "").strip() for a in added], ["STARTTLS"])
        self.assertEqual(client[1].find_elements(By.CSS_SELECTOR, "li.cap-diff"), [])
        # the downloads are the API's transcripts
        self.assertEqual(self.d.find_element(By.ID, "dl-text").get_attribute("href"),
                         self.base + "/api/v1/session/1/transcript")
        self.assertEqual(self.d.find_element(By.ID, "dl-jsonl").get_attribute("href"),
                         self.base + "/api/v1/session/1/transcript?format=json")
        # without --pcap and --keylog, no such downloads
        self.assertEqual(self.d.find_elements(By.CSS_SELECTOR, "#dl-pcap, #dl-keylog"), [])
        self.assert_no_secret()
        self.assert_console_clean()
        self.shot("session")

    def test_pcap_and_keylog_downloads_when_on(self):
        d = tempfile.mkdtemp(prefix="smtpscope-ui-out-")
        self.addCleanup(shutil.rmtree, d, True)
        self.up = h.Upstream()
        self.start("--pcap", os.path.join(d, "all.pcap"), "--keylog", os.path.join(d, "all.keylog"),
                   mode="relay", upstream=self.up)
        self.seed()
        self.scope.wait_for(r"\[#1\] smtpscope: disconnect")
        self.open("/session/1")
        self.wait(lambda d: d.find_elements(By.ID, "dl-keylog"), what="the download links")
        for el, path, name in (("dl-pcap", "pcap", "smtpscope-session-1.pcap"),
                               ("dl-keylog", "keylog", "smtpscope-session-1.keylog")):
            a = self.d.find_element(By.ID, el)
            self.assertEqual(a.get_attribute("href"), f"{self.base}/api/v1/session/1/{path}")
            self.assertEqual(a.get_attribute("download"), name)
            self.assertTrue(a.is_displayed())
        self.assertIn("pcap", self.text_of(".downloads"))
        self.assertIn("key log", self.text_of(".downloads"))
        self.assert_console_clean()

    def test_session_lines_stream_in(self):
        self.start()
        self.open("/")
        self.wait(lambda d: "off" not in d.find_element(By.ID, "live").get_attribute("class"))
        c = smtplib.SMTP("127.0.0.1", self.scope.port, timeout=20)
        c.ehlo("first.example")
        self.wait_text("#sessions tr[data-id='1']", "open")
        self.click_live("#sessions tr[data-id='1'] a")
        self.wait_text("#lanes", "ehlo first.example")
        self.mark_page()
        c.mail("later@example.test")
        self.wait_mail_from("<later@example.test>")
        c.quit()
        self.wait_text("h1", "closed")
        self.assert_not_reloaded()
        self.assert_console_clean()


def html_message(html, subject="Hostile"):
    m = EmailMessage()
    m["From"] = "mallory@example.test"
    m["To"] = "victim@example.test"
    m["Subject"] = subject
    m.set_content("plain part\n")
    m.add_alternative(html, subtype="html")
    return m


class MessageViewTest(UiCase):
    def test_message_decoded_html_and_attachment(self):
        self.start()
        # a Bcc: the envelope has a recipient the headers do not name
        self.send(rich_message(), rcpts=["bob@example.test", "carol@example.test",
                                         "dan@example.test", "hidden@example.test"])
        mid = json.loads(call(self.port, "/api/v1/messages")[2])["messages"][0]["ID"]
        self.open(f"/message/{mid}")
        self.wait_text("#subject", "Grüße 1 aus Köln")
        self.assertEqual(self.text_of("#subject"), "Grüße 1 aus Köln")  # decoded
        self.assertIn("Jürgen Müller <juergen@example.test>", self.text_of("#hdr-from"))
        self.assertIn("Bob <bob@example.test>", self.text_of("#hdr-to"))
        self.assertIn("Dan <dan@example.test>", self.text_of("#hdr-cc"))
        self.assertIn("report.png", self.text_of("#attachments"))
        link = self.d.find_element(By.CSS_SELECTOR, "#attachments a")
        self.assertEqual(link.get_attribute("download"), "report.png")
        self.assertEqual(urllib.request.urlopen(link.get_attribute("href"), timeout=10).read()[:8],
                         b"\x89PNG\r\n\x1a\n")
        self.assertIn("250", self.text_of("#verdict"))
        self.assertIn("<hidden@example.test>", self.text_of("#envelope"))  # it differs: shown
        # the HTML, rendered in a sandboxed frame of /view/{ID}.html
        frame = self.d.find_element(By.ID, "html-frame")
        self.assertEqual(frame.get_attribute("sandbox"), "")  # no allow-scripts, no same origin
        self.assertTrue(frame.get_attribute("src").endswith(f"/view/{mid}.html"))
        self.d.switch_to.frame(frame)
        self.wait(lambda d: "Hallo Bob" in d.find_element(By.TAG_NAME, "body").text, what="the HTML")
        self.assertEqual(self.d.find_element(By.TAG_NAME, "b").text, "Bob")
        self.d.switch_to.default_content()
        self.shot("message")
        # the other tabs
        self.d.find_element(By.ID, "tab-text").click()
        self.wait_text("#text-body", "schöne Grüße.")
        self.d.find_element(By.ID, "tab-headers").click()
        self.wait_text("#panel", "Message-Id")
        self.d.find_element(By.ID, "tab-source").click()
        self.wait_text("#source", "Content-Transfer-Encoding: base64")
        self.assert_console_clean()
        # and deleted, back at the list
        self.d.find_element(By.ID, "delete").click()
        self.wait(lambda d: d.current_url.endswith("/messages"))
        self.wait_text("#messages-note", "No message yet")
        self.assertEqual(json.loads(call(self.port, "/api/v1/messages")[2])["total"], 0)
        self.assert_console_clean()

    def test_mail_script_and_onerror_never_run_and_remote_loads_only_when_asked(self):
        remote = Remote()
        self.addCleanup(remote.stop)
        r = f"http://127.0.0.1:{remote.port}"
        self.start()
        self.send(html_message(
            f'<p id="p">harmless</p>'
            f'<script>document.getElementById("p").textContent = "script ran";'
            f' new Image().src = "{r}/script-ran.png";</script>'
            f'<img id="bad" src="/nothing.png" onerror="document.getElementById(\'p\').textContent ='
            f' \'onerror ran\'; new Image().src = \'{r}/onerror-ran.png\'">'
            f'<img id="remote" src="{r}/remote.png">'))
        mid = json.loads(call(self.port, "/api/v1/messages")[2])["messages"][0]["ID"]
        self.open(f"/message/{mid}")
        frame = self.d.find_element(By.ID, "html-frame")
        self.d.switch_to.frame(frame)
        self.wait(lambda d: d.find_elements(By.ID, "p"), what="the HTML")
        time.sleep(1)  # time for a script, a handler or a picture to act
        self.assertEqual(self.d.find_element(By.ID, "p").text, "harmless")
        self.d.switch_to.default_content()
        self.assertEqual(remote.paths, [])  # nothing remote
        self.assertEqual(self.d.title, "smtpscope")
        # what the browser says, if anything, is what it blocked
        for e in self.console():
            self.assertRegex(e["message"], r"sandboxed|Content Security Policy|nothing\.png",
                             e)

        # the user asks for remote content: the picture loads, no script runs still
        self.d.find_element(By.ID, "load-remote").click()
        self.wait(lambda d: "/remote.png" in remote.paths, what="the remote picture")
        self.assertTrue(self.d.find_element(By.ID, "html-frame").get_attribute("src").endswith("?remote=1"))
        self.d.switch_to.frame(self.d.find_element(By.ID, "html-frame"))
        time.sleep(1)
        self.assertEqual(self.d.find_element(By.ID, "p").text, "harmless")
        self.d.switch_to.default_content()
        self.assertNotIn("/script-ran.png", remote.paths)
        self.assertNotIn("/onerror-ran.png", remote.paths)
        self.shot("message-hostile")


class SecretTest(UiCase):
    def test_auth_password_on_no_page(self):
        self.up = h.Upstream()
        self.start(mode="relay", upstream=self.up)
        self.seed()
        # AUTH LOGIN too: the password crosses as its own base64 line
        c = smtplib.SMTP("127.0.0.1", self.scope.port, timeout=20)
        c.starttls()
        c.ehlo()
        c.user, c.password = h.USER, h.PASSWORD
        c.auth("LOGIN", c.auth_login)
        c.quit()
        self.scope.wait_for(r"\[#2\] smtpscope: disconnect")
        mid = json.loads(call(self.port, "/api/v1/messages")[2])["messages"][0]["ID"]
        for path, ready in (("/", "#sessions tr[data-id='2']"), ("/session/1", "#lanes"),
                            ("/session/2", "#lanes"), ("/messages", "#messages tr"),
                            (f"/message/{mid}", "#subject")):
            self.open(path)
            self.wait(lambda d: d.find_elements(By.CSS_SELECTOR, ready), what=ready)
            time.sleep(0.3)
            self.assert_no_secret()
            if path.startswith("/session/"):
                self.assertIn("[redacted", self.text_of("#lanes"))
        for tab in ("tab-headers", "tab-source"):
            self.d.find_element(By.ID, tab).click()
            time.sleep(0.3)
            self.assert_no_secret()
        # and the downloads
        for path in ("/api/v1/session/1/transcript", "/api/v1/session/2/transcript?format=json"):
            body = call(self.port, path)[2].decode()
            for s in SECRETS:
                self.assertNotIn(s, body)
        self.assert_console_clean()


class ModesTest(UiCase):
    def test_replay_mode(self):
        rec = os.path.join(tempfile.mkdtemp(prefix="smtpscope-ui-rec-"), "rec.jsonl")
        self.addCleanup(shutil.rmtree, os.path.dirname(rec), True)
        up = h.Upstream()
        sc = h.Scope("--record", rec, upstream=up)
        subprocess.run([sys.executable, SEED, "127.0.0.1", str(sc.port), h.USER, h.PASSWORD],
                       capture_output=True, timeout=60, check=True)
        sc.wait_for("disconnect")
        h.assert_clean_exit(self, *sc.stop())
        up.stop()
        self.start("--replay", rec, mode="replay")
        self.open("/")
        self.wait(lambda d: "off" not in d.find_element(By.ID, "live").get_attribute("class"))
        self.assertIn("replay", self.text_of("#mode"))
        self.seed("any", "credentials")
        self.wait_text("#sessions tr[data-id='1']", "relayed")
        self.click_live("#sessions tr[data-id='1'] a")
        self.wait_text("#lanes", "smtpscope reply: b'250 2.0.0 OK queued as TEST1\\r\\n'")
        self.assert_console_clean()

    def test_relay_with_loops_2(self):
        self.up = h.Upstream()
        self.start("--loops", "2", mode="relay", upstream=self.up)
        self.open("/messages")
        self.wait(lambda d: "off" not in d.find_element(By.ID, "live").get_attribute("class"))
        for _ in range(4):  # spread over both loops
            self.seed()
        self.wait(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#messages tr")) == 4,
                  what="four messages")
        self.d.find_element(By.ID, "nav-sessions").click()
        self.wait(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#sessions tr")) == 4)
        self.wait(lambda d: self.text_of("#sessions").count("relayed") == 4)
        self.assert_console_clean()


class HeadersTest(h.ScopeCase):
    """The page over plain HTTP (no browser): its headers and the API's rules."""

    CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
           "frame-src 'self'; connect-src 'self'; object-src 'none'; base-uri 'none'; "
           "form-action 'none'; frame-ancestors 'none'")

    def start(self, *args):
        d = tempfile.mkdtemp(prefix="smtpscope-ui-")
        self.addCleanup(shutil.rmtree, d, True)
        self.scope = h.Scope("--sink", d, "--http", "127.0.0.1:0", *args, ca=False)
        self.port = int(re.search(URL_RX, self.scope.wait_for(URL_RX)).group(1))

    def raw(self, path, headers=()):
        import socket
        s = socket.create_connection(("127.0.0.1", self.port), timeout=10)
        hdr = "".join(f"{k}: {v}\r\n" for k, v in headers)
        if not any(k.lower() == "host" for k, _ in headers):
            hdr = f"Host: 127.0.0.1:{self.port}\r\n" + hdr
        s.sendall(f"GET {path} HTTP/1.1\r\n{hdr}Connection: close\r\n\r\n".encode())
        data = b""
        while True:
            b = s.recv(65536)
            if not b:
                break
            data += b
        s.close()
        head, _, body = data.partition(b"\r\n\r\n")
        status = int(head.split()[1])
        return status, head.decode("latin-1"), body

    def test_page_paths_types_csp_and_etag(self):
        self.start()
        page = None
        for path in ("/", "/messages", "/session/7", "/message/abc"):
            st, hd, body = call(self.port, path)
            self.assertEqual(st, 200, path)
            self.assertEqual(hd["Content-Type"], "text/html; charset=utf-8")
            self.assertEqual(hd["Content-Security-Policy"], self.CSP)
            self.assertEqual(hd["X-Frame-Options"], "DENY")
            self.assertEqual(hd["Cache-Control"], "no-cache")
            page = page or body
            self.assertEqual(body, page)  # the same page: it reads its path
        self.assertIn(b'<script type="module" src="/ui/app.js">', page)
        self.assertNotRegex(page.decode(), r"<script>|<style|\son[a-z]+=|style=")  # nothing inline
        for name, ctype in (("app.js", "text/javascript; charset=utf-8"),
                            ("app.css", "text/css; charset=utf-8"),
                            ("icon.svg", "image/svg+xml")):
            st, hd, body = call(self.port, "/ui/" + name)
            self.assertEqual((st, hd["Content-Type"]), (200, ctype), name)
            self.assertEqual(hd["Content-Security-Policy"], self.CSP)
            self.assertEqual(hd["X-Content-Type-Options"], "nosniff")
            etag = hd["ETag"]
            self.assertRegex(etag, r'^"[0-9a-f]{16}"$')
            st, hd2, body2 = self.raw("/ui/" + name, [("If-None-Match", etag)])
            self.assertEqual((st, body2), (304, b""), name)
            st, _, _ = self.raw("/ui/" + name, [("If-None-Match", '"0000000000000000"')])
            self.assertEqual(st, 200)
        self.assertEqual(call(self.port, "/ui/nothing.js")[0], 404)
        self.assertEqual(call(self.port, "/ui/../app.js")[0], 404)
        self.assertEqual(call(self.port, "/ui")[0], 404)
        # every module the page imports is served
        for js in re.findall(r'from "/ui/([a-z]+\.js)"', call(self.port, "/ui/app.js")[2].decode()):
            self.assertEqual(call(self.port, "/ui/" + js)[0], 200, js)

    def test_host_origin_and_auth_rules(self):
        self.start()
        self.assertEqual(self.raw("/", [("Host", "evil.example")])[0], 403)  # DNS rebinding
        self.assertEqual(self.raw("/ui/app.js", [("Host", "evil.example")])[0], 403)
        self.assertEqual(self.raw("/", [("Origin", "http://evil.example")])[0], 403)
        self.assertEqual(self.raw("/", [("Origin", f"http://127.0.0.1:{self.port}")])[0], 200)
        h.assert_clean_exit(self, *self.scope.stop())
        # --http-auth: the page asks for credentials like the API
        d = tempfile.mkdtemp(prefix="smtpscope-ui-auth-")
        self.addCleanup(shutil.rmtree, d, True)
        users = os.path.join(d, "users")
        digest = base64.b64encode(__import__("hashlib").sha1(b"pw").digest()).decode()
        with open(users, "w") as f:
            f.write(f"ann:{{SHA}}{digest}\n")
        os.chmod(users, 0o600)
        self.start("--http-auth", users)
        st, hd, _ = self.raw("/")
        self.assertEqual(st, 401)
        self.assertIn("WWW-Authenticate: Basic", hd)
        self.assertEqual(self.raw("/ui/app.js")[0], 401)
        ok = base64.b64encode(b"ann:pw").decode()
        self.assertEqual(self.raw("/", [("Authorization", "Basic " + ok)])[0], 200)


if __name__ == "__main__":
    unittest.main()
