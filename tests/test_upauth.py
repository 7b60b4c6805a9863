"""smtpscope logs in to the upstream itself (--upstream-auth), and what the
client may do with AUTH (--client-auth). The upstream is gmail_upstream's
Gmail-like aiosmtpd server (XOAUTH2 and OAUTHBEARER with Gmail's error
exchange, PLAIN and LOGIN with an app password); the token command is a
shell script that counts its runs. Clients: smtplib, swaks, curl, msmtp."""
import base64
import glob
import hashlib
import json
import os
import re
import shutil
import smtplib
import socket
import subprocess
import tempfile
import threading
import time
import unittest
import urllib.request

import gmail_upstream as g
import harness as h

MSG = b"From: a@x.test\r\nTo: b@x.test\r\nSubject: upstream auth\r\n\r\nhello\r\n"
GOOD_JSON = json.dumps({"access_token": g.GOOD_TOKEN, "expires_in": 3599, "scope":
                        "https://mail.google.com/", "token_type": "Bearer"})


def sha8(secret):
    return hashlib.sha256(secret.encode()).hexdigest()[:8]


def echo(text):
    """A shell snippet printing text (single-quoted)."""
    return "printf '%s\\n' '" + text.replace("'", "'\\''") + "'"


def run(*args, env=None, timeout=30):
    penv = dict(os.environ)
    penv.update(env or {})
    return subprocess.run([h.BIN, "--listen", "127.0.0.1:0", *args], capture_output=True,
                          text=True, timeout=timeout, env=penv, stdin=subprocess.DEVNULL)


class UpAuthCase(h.ScopeCase):
    def start(self, *args, offer=g.MECHS, env=None, **auth):
        self.up = g.GmailUpstream(offer=offer, **auth)
        self.scope = h.Scope(*args, upstream=self.up, env=env)
        return self.scope

    def token_args(self, tok, mech="xoauth2"):
        return ["--upstream-auth", mech, "--upstream-user", h.USER, "--upstream-token-cmd",
                tok.path]

    def send(self, login=None):
        with smtplib.SMTP("127.0.0.1", self.scope.port, timeout=30) as c:
            c.ehlo()
            if login is not None:
                c.login(*login)
            c.sendmail("a@x.test", ["b@x.test"], MSG)
        return self.up.recorder.wait_messages(1)

    def mail_reply(self):
        """The client's MAIL: (code, text) as smtplib gets it."""
        with smtplib.SMTP("127.0.0.1", self.scope.port, timeout=30) as c:
            c.ehlo()
            code, text = c.mail("a@x.test")
            c.rset()
        return code, text.decode()

    def restart(self):
        """End this smtpscope and its upstream (checked), for a subTest."""
        rc, err = self.scope.stop()
        h.assert_clean_exit(self, rc, err)
        self.scope = None
        self.up.stop()
        self.up = None


class MechanismTest(UpAuthCase):
    def test_xoauth2_with_a_token_command(self):
        tok = g.TokenCommand(echo(g.GOOD_TOKEN))
        sc = self.start(*self.token_args(tok))
        msgs = self.send()
        self.assertEqual(len(msgs), 1)
        a = self.up.auth.attempts
        self.assertEqual([(x["mechanism"], x["user"], x["secret"], x["ok"]) for x in a],
                         [("XOAUTH2", h.USER, g.GOOD_TOKEN, True)])
        self.assertEqual(a[0]["raw"], f"user={h.USER}\x01auth=Bearer {g.GOOD_TOKEN}\x01\x01".encode())
        sc.expect(f"upstream send: 'AUTH XOAUTH2 [redacted; user={h.USER}; token of "
                  f"{len(g.GOOD_TOKEN)} bytes, sha256 {sha8(g.GOOD_TOKEN)}]\\r\\n'")
        sc.expect("message accepted by the upstream")
        # after STARTTLS and the EHLO inside TLS, before the client's MAIL;
        # nothing pipelined: each line of the login after the last reply
        lines = sc.text().splitlines()
        at = lambda rx: next(i for i, l in enumerate(lines) if re.search(rx, l))
        starttls, auth = at(r"upstream send: 'STARTTLS"), at(r"upstream send: 'AUTH XOAUTH2")
        ehlo2 = next(i for i in range(starttls + 1, len(lines))
                     if "upstream send: 'EHLO" in lines[i])
        self.assertLess(ehlo2, auth)
        self.assertLess(auth, at(r"235 2\.7\.0"))
        self.assertLess(at(r"235 2\.7\.0"), at(r"ready: greeting the client"))
        self.assertLess(at(r"ready: greeting the client"), at(r"(?i)send: 'mail from"))
        self.assertEqual(tok.runs(), 1)

    def test_oauthbearer(self):
        tok = g.TokenCommand(echo(g.GOOD_TOKEN))
        self.start(*self.token_args(tok, "oauthbearer"))
        self.send()
        a = self.up.auth.attempts
        self.assertEqual(len(a), 1)
        self.assertEqual((a[0]["mechanism"], a[0]["user"], a[0]["ok"]), ("OAUTHBEARER", h.USER, True))
        self.assertEqual((a[0]["host"], a[0]["port"]), ("localhost", str(self.up.port)))
        self.assertEqual(a[0]["raw"], (f"n,a={h.USER},\x01host=localhost\x01port={self.up.port}"
                                       f"\x01auth=Bearer {g.GOOD_TOKEN}\x01\x01").encode())

    def test_implicit_tls(self):
        tok = g.TokenCommand(echo(g.GOOD_TOKEN))
        sc = self.start(*self.token_args(tok), "--upstream-tls", "implicit", implicit=True)
        self.send()
        self.assertEqual([(a["mechanism"], a["ok"]) for a in self.up.auth.attempts],
                         [("XOAUTH2", True)])
        self.assertNotIn("upstream send: 'STARTTLS", sc.text())

    def test_plain_with_a_password_file(self):
        d = tempfile.mkdtemp(prefix="smtpscope-pw-")
        path = os.path.join(d, "gmail-app-password")
        with open(path, "w") as f:
            f.write(g.APP_PASSWORD + "\n")
        os.chmod(path, 0o600)
        sc = self.start("--upstream-auth", "plain", "--upstream-user", h.USER,
                        "--upstream-password-file", path)
        self.send()
        self.assertEqual([(x["mechanism"], x["secret"], x["ok"]) for x in self.up.auth.attempts],
                         [("PLAIN", g.APP_PASSWORD, True)])
        sc.expect(f"'AUTH PLAIN [redacted; user={h.USER}; password of 16 bytes]\\r\\n'")
        shutil.rmtree(d)

    def test_login_with_a_password_from_the_environment(self):
        sc = self.start("--upstream-auth", "login", "--upstream-user", h.USER,
                        "--upstream-password-env", "GMAIL_APP_PASSWORD",
                        env={"GMAIL_APP_PASSWORD": g.APP_PASSWORD})
        self.send()
        self.assertEqual([(x["mechanism"], x["secret"], x["ok"]) for x in self.up.auth.attempts],
                         [("LOGIN", g.APP_PASSWORD, True)])
        sc.expect("upstream send: 'AUTH LOGIN\\r\\n'")
        sc.expect(f"upstream send: '[redacted; user={h.USER}]\\r\\n'")
        sc.expect("upstream send: '[redacted; password of 16 bytes]\\r\\n'")

    def test_auto_and_lists_pick_in_order(self):
        X, O, P, L = g.MECHS
        cases = [  # (--upstream-auth, secret source, mechanisms offered, the one used)
            ("auto", "token", (X, O, P, L), X),
            ("auto", "token", (O, P, L), O),
            ("auto", "token", (P, L), P),
            ("auto", "token", (L,), L),
            ("auto", "password", (X, O, P, L), P),  # a password is no bearer token
            ("auto", "password", (X, O, L), L),
            ("login,plain", "password", (X, O, P, L), L),
            ("oauthbearer,xoauth2", "token", (X, O, P, L), O),
        ]
        for spec, source, offer, want in cases:
            with self.subTest(spec=spec, source=source, offer=offer):
                tok = g.TokenCommand(echo(g.GOOD_TOKEN))
                args = ["--upstream-auth", spec, "--upstream-user", h.USER]
                args += (["--upstream-token-cmd", tok.path] if source == "token" else
                         ["--upstream-password-env", "PW"])
                # a token command's output is the password for PLAIN and LOGIN
                self.start(*args, offer=offer, env={"PW": g.APP_PASSWORD},
                           password=g.GOOD_TOKEN if source == "token" else g.APP_PASSWORD)
                self.send()
                self.assertEqual([(a["mechanism"], a["ok"]) for a in self.up.auth.attempts],
                                 [(want, True)])
                self.restart()

    def test_no_mechanism_in_common(self):
        tok = g.TokenCommand(echo(g.GOOD_TOKEN))
        sc = self.start(*self.token_args(tok), offer=("PLAIN", "LOGIN"))
        code, text = self.mail_reply()
        self.assertEqual(code, 530)
        self.assertIn("no mechanism in common", text)
        self.assertIn("the upstream offers AUTH LOGIN PLAIN, smtpscope may use XOAUTH2", text)
        self.assertEqual(self.up.auth.attempts, [])
        self.assertEqual(tok.runs(), 0)
        sc.expect("NOT logged in to the upstream")


class ClientAuthTest(UpAuthCase):
    def test_accept_offers_plain_login_and_forwards_nothing(self):
        tok = g.TokenCommand(echo(g.GOOD_TOKEN))
        sc = self.start(*self.token_args(tok))  # accept is the default with --upstream-auth
        with smtplib.SMTP("127.0.0.1", sc.port, timeout=30) as c:
            c.ehlo()
            self.assertEqual(c.esmtp_features["auth"].strip(), "PLAIN LOGIN")
            code, text = c.login("bob@client.test", "client-pass-123")
            self.assertEqual(code, 235)
            self.assertTrue(text.startswith(b"2.7.0 "), text)
            c.sendmail("a@x.test", ["b@x.test"], MSG)
        self.assertEqual(len(self.up.recorder.wait_messages(1)), 1)
        # only smtpscope's own login reached the upstream
        self.assertEqual([(a["user"], a["secret"]) for a in self.up.auth.attempts],
                         [(h.USER, g.GOOD_TOKEN)])
        sc.expect("the client logged in as bob@client.test: accepted by smtpscope")
        sc.expect("capabilities shown to the client: -AUTH +STARTTLS +AUTH PLAIN LOGIN")

    @unittest.skipUnless(shutil.which("swaks"), "swaks not installed")
    def test_accept_with_swaks_login(self):
        tok = g.TokenCommand(echo(g.GOOD_TOKEN))
        sc = self.start(*self.token_args(tok), "--client-auth", "accept")
        r = subprocess.run(["swaks", "--server", f"127.0.0.1:{sc.port}", "--auth", "LOGIN",
                            "--auth-user", "swaks-user", "--auth-password", "swaks-pass",
                            "--from", "a@x.test", "--to", "b@x.test", "--header",
                            "Subject: swaks"], capture_output=True, text=True, timeout=60)
        self.assertEqual(r.returncode, 0, r.stdout[-800:])
        self.assertIn("<-  235 2.7.0", r.stdout)
        self.assertEqual(len(self.up.recorder.wait_messages(1)), 1)
        self.assertEqual([a["user"] for a in self.up.auth.attempts], [h.USER])
        sc.expect("the client logged in as swaks-user")

    @unittest.skipUnless(shutil.which("msmtp"), "msmtp not installed")
    def test_accept_with_msmtp_plain(self):
        sc = self.start("--upstream-auth", "plain", "--upstream-user", h.USER,
                        "--upstream-password-env", "PW", env={"PW": g.APP_PASSWORD})
        r = subprocess.run(["msmtp", "--host=127.0.0.1", f"--port={sc.port}", "--tls=off",
                            "--auth=plain", "--user=msmtp-user", "--passwordeval=echo msmtp-pass",
                            "--from=a@x.test", "--", "b@x.test"],
                           input=b"Subject: msmtp\r\n\r\nvia msmtp\r\n", capture_output=True,
                           timeout=60)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(len(self.up.recorder.wait_messages(1)), 1)
        self.assertEqual([(a["user"], a["secret"]) for a in self.up.auth.attempts],
                         [(h.USER, g.APP_PASSWORD)])
        sc.expect("the client logged in as msmtp-user")

    def test_none_removes_auth(self):
        tok = g.TokenCommand(echo(g.GOOD_TOKEN))
        sc = self.start(*self.token_args(tok), "--client-auth", "none")
        with smtplib.SMTP("127.0.0.1", sc.port, timeout=30) as c:
            c.ehlo()
            self.assertNotIn("auth", c.esmtp_features)
            code, text = c.docmd("AUTH", "PLAIN " + base64.b64encode(b"\0u\0p").decode())
            self.assertEqual(code, 502)
            self.assertIn(b"smtpscope logs in to the upstream itself", text)
        # curl sends without logging in: smtpscope's login carries it
        r = subprocess.run(["curl", "-sS", f"smtp://127.0.0.1:{sc.port}", "--mail-from",
                            "c@x.test", "--mail-rcpt", "r@x.test", "--upload-file", "-"],
                           input=b"Subject: curl\r\n\r\nvia curl\r\n", capture_output=True,
                           timeout=60)
        self.assertEqual(r.returncode, 0, r.stderr)
        msgs = self.up.recorder.wait_messages(1)
        self.assertEqual(msgs[0][0], "c@x.test")
        # each session logged in itself: the smtplib one and curl's
        self.assertEqual([(a["user"], a["ok"]) for a in self.up.auth.attempts],
                         [(h.USER, True)] * 2)

    def test_passthrough_is_the_default_without_upstream_auth(self):
        for extra in ((), ("--client-auth", "passthrough")):
            with self.subTest(extra=extra):
                self.up = h.Upstream()  # harness's: PLAIN and LOGIN with USER, PASSWORD
                self.scope = h.Scope(*extra, upstream=self.up)
                with smtplib.SMTP("127.0.0.1", self.scope.port, timeout=30) as c:
                    c.ehlo()
                    self.assertIn("PLAIN", c.esmtp_features["auth"])
                    c.login(h.USER, h.PASSWORD)
                    c.sendmail("a@x.test", ["b@x.test"], MSG)
                self.assertEqual(self.up.recorder.auth, [("PLAIN", True)])
                self.restart()


class TokenCommandTest(UpAuthCase):
    def test_a_failing_command_gives_454_and_no_login(self):
        tok = g.TokenCommand("echo 'no refresh token stored' >&2; exit 3")
        sc = self.start(*self.token_args(tok))
        code, text = self.mail_reply()
        self.assertEqual(code, 454)
        self.assertIn("4.7.0", text)
        self.assertIn("exited with status 3", text)
        self.assertEqual(self.up.auth.attempts, [])
        sc.expect("the token command (run 1, ")
        sc.expect("its stderr: 'no refresh token stored'")

    def test_a_command_that_hangs_is_killed_at_its_timeout(self):
        tok = g.TokenCommand('sleep 30 & echo $! > "$d/child"; wait')
        sc = self.start(*self.token_args(tok), "--upstream-token-timeout", "1s")
        t0 = time.time()
        code, text = self.mail_reply()
        self.assertLess(time.time() - t0, 15)
        self.assertEqual(code, 454)
        self.assertIn("did not finish within 1000 ms", text)
        # the shell and what it started were killed, as a process group
        with open(os.path.join(tok.dir, "child")) as f:
            child = int(f.read())
        for pid in (tok.pid(1), child):
            try:
                with open(f"/proc/{pid}/stat") as f:
                    state = f.read().rsplit(")", 1)[1].split()[0]
                self.assertEqual(state, "Z", f"process {pid} still runs")
            except FileNotFoundError:
                pass
        self.assertEqual(self.up.auth.attempts, [])

    def test_shutdown_while_the_command_runs(self):
        tok = g.TokenCommand('sleep 60 & echo $! > "$d/child"; wait')
        sc = self.start(*self.token_args(tok), "--grace", "1s")
        c = socket.create_connection(("127.0.0.1", sc.port), timeout=10)
        sc.expect("waiting for the token command")
        t0 = time.time()
        rc, err = sc.stop()  # SIGTERM: the waiting session ends, the command is killed
        self.scope = None
        h.assert_clean_exit(self, rc, err)
        self.assertLess(time.time() - t0, 10)
        c.close()
        for _ in range(50):
            if os.path.exists(os.path.join(tok.dir, "child")):
                break
            time.sleep(0.05)
        with open(os.path.join(tok.dir, "child")) as f:
            child = int(f.read())
        try:
            with open(f"/proc/{child}/stat") as f:
                self.assertEqual(f.read().rsplit(")", 1)[1].split()[0], "Z")
        except FileNotFoundError:
            pass

    def test_a_command_that_prints_nothing(self):
        tok = g.TokenCommand("true")
        self.start(*self.token_args(tok))
        code, text = self.mail_reply()
        self.assertEqual(code, 454)
        self.assertIn("printed nothing", text)

    def test_a_rejected_token_is_fetched_again_once(self):
        for mech, answer in (("xoauth2", b"\r\n"), ("oauthbearer", b"AQ==\r\n")):
            with self.subTest(mech=mech):
                tok = g.TokenCommand(echo(json.dumps({"access_token": g.BAD_TOKEN,
                                                      "expires_in": 3599})), echo(GOOD_JSON))
                sc = self.start(*self.token_args(tok, mech), "--explain")
                self.assertEqual(len(self.send()), 1)
                self.assertEqual(tok.runs(), 2)
                a = self.up.auth.attempts
                self.assertEqual([(x["secret"], x["ok"], x["answer"]) for x in a],
                                 [(g.BAD_TOKEN, False, answer), (g.GOOD_TOKEN, True, None)])
                sc.expect('its error: {"status":"400","schemes":"Bearer",'
                          '"scope":"https://mail.google.com/"}')
                sc.expect("running the token command again, once")
                sc.expect("the JSON is Google's OAuth error: status 400")
                # the good token is cached: the next session runs nothing
                self.send()
                self.assertEqual(tok.runs(), 2)
                self.assertEqual(len(self.up.auth.attempts), 3)
                self.restart()

    def test_an_expired_token_is_not_cached(self):
        tok = g.TokenCommand(echo(json.dumps({"access_token": g.BAD_TOKEN, "expires_in": 0})),
                             echo(GOOD_JSON))
        self.start(*self.token_args(tok))
        self.send()
        self.assertEqual(tok.runs(), 2)
        self.assertEqual([x["ok"] for x in self.up.auth.attempts], [False, True])

    def test_one_run_for_sessions_that_wait_together(self):
        tok = g.TokenCommand("sleep 1; " + echo(GOOD_JSON))
        sc = self.start(*self.token_args(tok))
        errors = []

        def client():
            try:
                with smtplib.SMTP("127.0.0.1", sc.port, timeout=30) as c:
                    c.sendmail("a@x.test", ["b@x.test"], MSG)
            except Exception as e:  # reported below
                errors.append(e)

        threads = [threading.Thread(target=client) for _ in range(3)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        self.assertEqual(errors, [])
        self.assertEqual(len(self.up.recorder.wait_messages(3)), 3)
        self.assertEqual(tok.runs(), 1)
        self.assertEqual(len(self.up.auth.ok_attempts()), 3)
        end = time.time() + 15
        while len(re.findall(r"waiting for the token command", sc.text())) < 3 and \
                time.time() < end:
            time.sleep(0.05)
        self.assertEqual(len(re.findall(r"waiting for the token command", sc.text())), 3)

    def test_a_token_still_refused_gives_535(self):
        tok = g.TokenCommand(echo(g.BAD_TOKEN))
        sc = self.start(*self.token_args(tok), "--explain")
        code, text = self.mail_reply()
        self.assertEqual(code, 535)
        self.assertTrue(text.startswith("5.7.8 smtpscope's login to the upstream failed: the "
                                        "credentials or the token were not accepted"), text)
        self.assertIn("a second token tried", text)
        self.assertEqual(tok.runs(), 2)
        self.assertEqual([(x["ok"], x["answer"]) for x in self.up.auth.attempts],
                         [(False, b"\r\n"), (False, b"\r\n")])
        sc.expect("OAuth app still in Testing status expires after 7 days")
        # smtplib's sendmail: a permanent refusal of the sender
        with smtplib.SMTP("127.0.0.1", sc.port, timeout=30) as c:
            with self.assertRaises(smtplib.SMTPSenderRefused) as cm:
                c.sendmail("a@x.test", ["b@x.test"], MSG)
            self.assertEqual(cm.exception.smtp_code, 535)
        self.assertEqual(self.up.recorder.messages, [])

    def test_too_many_login_attempts_stays_temporary(self):
        tok = g.TokenCommand(echo(g.BAD_TOKEN))
        sc = self.start(*self.token_args(tok), "--explain", throttle=True)
        code, text = self.mail_reply()
        self.assertEqual(code, 454)
        self.assertTrue(text.startswith("4.7.0 smtpscope's login to the upstream failed: too many "
                                        "login attempts"), text)
        self.assertEqual(tok.runs(), 1)  # no retry of a temporary refusal
        sc.expect("Too many login attempts, please try again later): logins are throttled")

    def test_an_account_password_gives_534(self):
        sc = self.start("--upstream-auth", "plain", "--upstream-user", h.USER,
                        "--upstream-password-env", "PW", "--explain",
                        env={"PW": "my-account-password"}, plain_reply="534")
        code, text = self.mail_reply()
        self.assertEqual(code, 534)
        self.assertTrue(text.startswith("5.7.9 smtpscope's login to the upstream failed: an "
                                        "application-specific password is required"), text)
        sc.expect("make an app password")
        self.assertEqual(len(self.up.auth.attempts), 1)  # a password is not fetched again


class SecretsTest(UpAuthCase):
    def outputs(self, d, http_port):
        """Everything smtpscope wrote or serves, as one text per place."""
        out = {"console": self.scope.text()}
        for path in glob.glob(os.path.join(d, "**", "*"), recursive=True):
            if os.path.isfile(path):
                with open(path, "rb") as f:
                    out[path] = f.read().decode("latin-1")
        base = f"http://127.0.0.1:{http_port}"
        with urllib.request.urlopen(base + "/api/v1/messages", timeout=20) as r:
            listing = r.read().decode()
        out["GET /api/v1/messages"] = listing
        ids = [m["ID"] for m in json.loads(listing)["messages"]]
        self.assertEqual(len(ids), 1)
        for p in (f"/api/v1/message/{ids[0]}", f"/api/v1/message/{ids[0]}/raw", "/api/v1/info"):
            with urllib.request.urlopen(base + p, timeout=20) as r:
                out["GET " + p] = r.read().decode("latin-1")
        return out

    def assert_nowhere(self, outputs, secrets):
        needles = set()
        for s in secrets:
            needles.add(s if isinstance(s, str) else s.decode("latin-1"))
            needles |= g.b64_fragments(s)
            needles.add(base64.b64encode(s.encode() if isinstance(s, str) else s).decode())
        for where, text in outputs.items():
            for n in needles:
                self.assertNotIn(n, text, f"{n!r} is in {where}")

    def run_all_outputs(self, *args, login=None, env=None, **auth):
        d = tempfile.mkdtemp(prefix="smtpscope-secrets-")
        os.mkdir(os.path.join(d, "sessions"))
        port = h.free_port()
        self.start(*args, "--json", os.path.join(d, "t.jsonl"), "--transcript-dir",
                   os.path.join(d, "sessions"), "--pcap", os.path.join(d, "t.pcap"), "--http",
                   f"127.0.0.1:{port}", "--explain", "--trace", env=env, **auth)
        self.send(login=login)
        time.sleep(0.3)  # the transcript files are written as events come
        out = self.outputs(d, port)
        scope, self.scope = self.scope, None
        rc, err = scope.stop()
        h.assert_clean_exit(self, rc, err)
        out["console"] = scope.text()  # all of it, to the summary
        out["stderr"] = err
        for path in glob.glob(os.path.join(d, "**", "*"), recursive=True):
            if os.path.isfile(path):
                with open(path, "rb") as f:
                    out[path] = f.read().decode("latin-1")
        shutil.rmtree(d)
        return out

    def test_no_token_anywhere(self):
        tok = g.TokenCommand(echo(g.BAD_TOKEN), echo(GOOD_JSON))
        out = self.run_all_outputs(*self.token_args(tok), login=("carol@client.test",
                                                                 "client-secret-42"))
        self.assertEqual(tok.runs(), 2)
        blobs = [f"user={h.USER}\x01auth=Bearer {t}\x01\x01" for t in (g.BAD_TOKEN, g.GOOD_TOKEN)]
        self.assertEqual([a["raw"].decode() for a in self.up.auth.attempts], blobs)
        self.assert_nowhere(out, [g.GOOD_TOKEN, g.BAD_TOKEN, "client-secret-42", *blobs,
                                  "\0carol@client.test\0client-secret-42"])
        # what is shown instead: the mechanism, the user, length and hash prefix
        for where in ("console", *[k for k in out if k.endswith("t.jsonl")]):
            self.assertIn(f"[redacted; user={h.USER}; token of {len(g.GOOD_TOKEN)} bytes, "
                          f"sha256 {sha8(g.GOOD_TOKEN)}]", out[where], where)
        self.assertIn("user=carol@client.test", out["console"])
        # the JSON lines of smtpscope's own login are the schema's events
        import jsonschema
        with open(os.path.join(os.path.dirname(__file__), "..", "docs",
                               "transcript.schema.json")) as f:
            validator = jsonschema.Draft202012Validator(json.load(f))
        jl = next(v for k, v in out.items() if k.endswith("t.jsonl"))
        events = [json.loads(l) for l in jl.splitlines()]
        for e in events:
            validator.validate(e)
        auth = [e for e in events if e.get("verb") == "AUTH" and e.get("leg") == "upstream"]
        self.assertEqual(len(auth), 2)
        for e in auth:
            self.assertEqual((e["own"], e["redacted"], e["mechanism"]), (True, True, "XOAUTH2"))

    def test_no_password_anywhere(self):
        out = self.run_all_outputs("--upstream-auth", "plain", "--upstream-user", h.USER,
                                   "--upstream-password-env", "PW", env={"PW": g.APP_PASSWORD})
        self.assert_nowhere(out, [g.APP_PASSWORD, f"\0{h.USER}\0{g.APP_PASSWORD}"])
        self.assertIn(f"[redacted; user={h.USER}; password of 16 bytes]", out["console"])
        self.assertNotIn("sha256", out["console"])  # a password's hash is not shown

    def test_show_secrets_shows_them(self):
        tok = g.TokenCommand(echo(g.GOOD_TOKEN))
        sc = self.start(*self.token_args(tok), "--show-secrets")
        self.send()
        blob = base64.b64encode(f"user={h.USER}\x01auth=Bearer {g.GOOD_TOKEN}\x01\x01".encode())
        sc.expect(f"upstream send: 'AUTH XOAUTH2 {blob.decode()}\\r\\n'")


class StartupTest(unittest.TestCase):
    def test_a_password_file_others_may_read_is_refused(self):
        d = tempfile.mkdtemp(prefix="smtpscope-pw-")
        path = os.path.join(d, "pw")
        with open(path, "w") as f:
            f.write(g.APP_PASSWORD + "\n")
        for mode in (0o644, 0o640, 0o604):
            with self.subTest(mode=oct(mode)):
                os.chmod(path, mode)
                r = run("--upstream-auth", "plain", "--upstream-user", h.USER,
                        "--upstream-password-file", path)
                self.assertEqual(r.returncode, 2, r.stderr)
                self.assertEqual(r.stderr,
                                 f"smtpscope: --upstream-password-file {path}: others may read or "
                                 f"write it (mode {mode:04o}): a file that holds a password must "
                                 f"be yours and readable by you alone; run: chmod 600 {path}\n")
                self.assertNotIn("listening", r.stdout)
        shutil.rmtree(d)

    def test_start_up_and_usage_errors(self):
        tok = "--upstream-token-cmd", "echo x"
        cases = [
            (["--upstream-auth", "plain", "--upstream-user", "u", "--upstream-password-env",
              "SMTPSCOPE_UNSET_VAR"], "--upstream-password-env SMTPSCOPE_UNSET_VAR: the variable "
             "is not set"),
            (["--upstream-auth", "plain", "--upstream-user", "u", "--upstream-password-file",
              "/nonexistent/pw"], "--upstream-password-file /nonexistent/pw: cannot read it"),
            (["--upstream-auth", "xoauth2", *tok, "--client-auth", "passthrough",
              "--upstream-user", "u"], "--client-auth passthrough cannot go with --upstream-auth"),
            (["--upstream-auth", "xoauth2", *tok], "--upstream-auth needs --upstream-user USER"),
            (["--upstream-auth", "xoauth2", "--upstream-user", "u", *tok,
              "--upstream-password-env", "X"], "exactly one of"),
            (["--upstream-auth", "xoauth2", "--upstream-user", "u"], "(none given)"),
            (["--upstream-auth", "xoauth2", "--upstream-user", "u", *tok, "--loops", "2"],
             "--upstream-token-cmd needs one event loop"),
            (["--upstream-auth", "cram-md5"], "'cram-md5' is not a mechanism"),
            (["--upstream-auth", "plain,plain"], "PLAIN is named twice"),
            (["--upstream-auth", "plain,"], "expected MECH[,MECH...] or auto"),
            (["--upstream-user", "u", *tok], "need --upstream-auth MECH"),
            (["--client-auth", "maybe"], "--client-auth: expected none, accept or passthrough"),
            (["--upstream-token-timeout", "soon"], "--upstream-token-timeout: expected a duration"),
            (["--sink", "/tmp", "--client-auth", "none"], "are for relay mode"),
        ]
        for args, want in cases:
            with self.subTest(args=args):
                r = run(*args)
                self.assertEqual(r.returncode, 2, r.stderr)
                self.assertIn(want, r.stderr)
                self.assertEqual(r.stderr.count("\n"), 1, r.stderr)

    def test_help_names_the_options(self):
        r = subprocess.run([h.BIN, "--help"], capture_output=True, text=True, timeout=30)
        for opt in ("--upstream-auth MECH[,MECH...]", "--upstream-user USER",
                    "--upstream-password-file FILE", "--upstream-password-env VAR",
                    "--upstream-token-cmd 'CMD'", "--upstream-token-timeout T",
                    "--client-auth none|accept|passthrough"):
            self.assertIn(opt, r.stdout)
        section = r.stdout[r.stdout.index("Logging in to the upstream"):r.stdout.index("Transcripts:")]
        self.assertTrue(all(len(l) <= 80 for l in section.splitlines()), section)


if __name__ == "__main__":
    unittest.main()
