"""--persona gmail: smtpscope answers as smtp.gmail.com:587 does, offline.

The founding script (seed_script.py) against the persona gives the smtplib
debug lines of a Gmail session (golden/persona_gmail_seed.txt, made-up ids
and times normalised) and the same exchange as ../shared/reference; each
failure scenario, the rules (STARTTLS first, AUTH first, no pipelining after
STARTTLS) and XOAUTH2 give Gmail's codes and texts; swaks and curl as
clients when installed. Sink mode only but for one replay test.
"""
import base64
import json
import os
import re
import shutil
import smtplib
import socket
import subprocess
import tempfile
import unittest

import harness as h

HERE = os.path.dirname(os.path.abspath(__file__))
SEED = os.path.join(HERE, "seed_script.py")
GOLDEN = os.path.join(HERE, "golden", "persona_gmail_seed.txt")
REFERENCE = os.path.join(HERE, "..", "..", "shared", "reference", "smtplib-debuglevel1.txt")

USER, PASSWORD, TOKEN = "leehark@example.test", "abcd efgh ijkl mnop", "ya29.a0-token"

# Gmail's texts; ID and TIME stand for its per-session id and a time
BAD_CREDENTIALS = ("535-5.7.8 Username and Password not accepted. For more information, go to\r\n"
                   "535 5.7.8  https://support.google.com/mail/?p=BadCredentials ID - gsmtp\r\n")
SCENARIOS = {
    # name: (stage, the reply)
    "bad-credentials": ("auth", BAD_CREDENTIALS),
    "app-password-required": (
        "auth",
        "534-5.7.9 Application-specific password required. For more information, go to\r\n"
        "534 5.7.9  https://support.google.com/mail/?p=InvalidSecondFactor ID - gsmtp\r\n"),
    "too-many-logins": (
        "auth",
        "454-4.7.0 Too many login attempts, please try again later. For more information, go to"
        "\r\n454 4.7.0  https://support.google.com/mail/answer/7126229 ID - gsmtp\r\n"),
    "try-again-later": ("connect", "421 4.7.0 Try again later, closing connection. ID - gsmtp\r\n"),
    "too-large": (
        "eod",
        "552-5.2.3 Your message exceeded Google's message size limits. Please visit\r\n"
        "552-5.2.3  https://support.google.com/mail/?p=MaxSizeError to view our size\r\n"
        "552 5.2.3 guidelines. ID - gsmtp\r\n"),
    "daily-limit": (
        "mail",
        "550-5.4.5 Daily user sending limit exceeded. For more information, go to\r\n"
        "550 5.4.5  https://support.google.com/a/answer/166852 ID - gsmtp\r\n"),
}
NEED_TLS = "530 5.7.0 Must issue a STARTTLS command first. ID - gsmtp\r\n"
NEED_AUTH = ("530-5.7.0 Authentication Required. For more information, go to\r\n"
             "530 5.7.0  https://support.google.com/mail/?p=WantAuthError ID - gsmtp\r\n")
PIPELINED = ("454 4.5.0 SMTP protocol violation, no commands allowed to pipeline after STARTTLS, "
             "see RFC 3207. ID - gsmtp\r\n")
XOAUTH2_ERROR = ("334 eyJzdGF0dXMiOiI0MDAiLCJzY2hlbWVzIjoiQmVhcmVyIiwic2NvcGUiOiJodHRwczovL21haWwu"
                 "Z29vZ2xlLmNvbS8ifQ==\r\n")

ID_RX = re.compile(r"\b[a-z]\d{1,2}-20020a[0-9a-f]{10}00b0[0-9a-f]{12}sm\d{7}[a-z]{3}\.\d{2}\b")


def norm(text):
    """Gmail's per-session parts out: its ids, the time after 'OK  ', the
    client's EHLO name; and smtplib's own spelling of MAIL FROM: and RCPT
    TO: (Python 3.11 writes 'mail FROM:', later ones 'mail from:')."""
    text = ID_RX.sub("ID", text)
    text = re.sub(r"OK  \d{9,11} ID", "OK  TIME ID", text)
    text = re.sub(r"send: '(mail|rcpt) (from|to):", lambda m: f"send: '{m.group(1)} "
                  f"{m.group(2).upper()}:", text, flags=re.I)
    return re.sub(r"ehlo \S+\\r\\n", r"ehlo LOCALNAME\\r\\n", text)


def shape(lines):
    """The exchange of smtplib debug lines: each command's verb (or the
    message), each reply's code; from the first command on."""
    out = []
    for l in lines:
        m = re.match(r"send: b?'(\w+)", l)
        if m and not l.startswith("send: b'"):
            out.append(("send", m.group(1).lower()))
        elif l.startswith("send: b'"):
            out.append(("send", "<message>"))
        elif (m := re.match(r"reply: retcode \((\d+)\)", l)) and out:
            out.append(("reply", m.group(1)))
    return out


def read(path):
    with open(path) as f:
        return f.read()


def xoauth2(user, token):
    return base64.b64encode(f"user={user}\x01auth=Bearer {token}\x01\x01".encode()).decode()


class Raw:
    """A client that reads whole replies as bytes, for Gmail's exact texts."""

    def __init__(self, port):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=15)

    def reply(self):
        return h.read_reply(self.sock).decode("utf-8", "replace")

    def send(self, data):
        self.sock.sendall(data.encode() if isinstance(data, str) else data)

    def cmd(self, line):
        self.send(line + "\r\n")
        return self.reply()

    def starttls(self):
        r = self.cmd("STARTTLS")
        assert r.startswith("220 "), r
        self.sock = h.client_tls(self.sock)

    def close(self):
        self.sock.close()


class PersonaCase(h.ScopeCase):
    def setUp(self):
        super().setUp()
        self.dir = tempfile.mkdtemp(prefix="smtpscope-persona-")
        self.clients = []

    def tearDown(self):
        try:
            self.close_clients()  # first: smtpscope's stop waits for open sessions
            super().tearDown()
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)

    def gmail(self, *args):
        self.scope = h.Scope("--sink", self.dir, "--persona", "gmail", "--persona-user", USER,
                             "--persona-password", PASSWORD, "--persona-token", TOKEN, *args,
                             ca=False)
        return self.scope

    def client(self, tls=True, login=True):
        """A raw client after the greeting, EHLO (and STARTTLS, EHLO, AUTH)."""
        c = self.raw()
        self.assertTrue(c.reply().startswith("220 smtp.gmail.com ESMTP "))
        self.assertTrue(c.cmd("EHLO client.example.test").startswith("250-smtp.gmail.com"))
        if tls:
            c.starttls()
            self.assertIn("250-AUTH LOGIN PLAIN XOAUTH2", c.cmd("EHLO client.example.test"))
        if login:
            plain = base64.b64encode(f"\0{USER}\0{PASSWORD}".encode()).decode()
            self.assertEqual(c.cmd("AUTH PLAIN " + plain), "235 2.7.0 Accepted\r\n")
        return c

    def raw(self):
        c = Raw(self.scope.port)
        self.clients.append(c)
        return c

    def close_clients(self):
        while self.clients:
            self.clients.pop().close()

    def restart(self):
        """The end of one smtpscope of a loop of runs."""
        self.close_clients()
        rc, err = self.scope.stop()
        h.assert_clean_exit(self, rc, err)
        self.scope = None

    def stored(self):
        return sorted(f for f in os.listdir(self.dir) if f.endswith(".eml"))


class SeedScriptTest(PersonaCase):
    def run_seed(self, password=PASSWORD):
        r = subprocess.run(["/usr/bin/python3", SEED, "127.0.0.1", str(self.scope.port), USER,
                            password], capture_output=True, text=True, timeout=60)
        return r

    def test_seed_script_sees_a_gmail_session(self):
        self.gmail()
        r = self.run_seed()
        self.assertEqual(r.returncode, 0, r.stderr)
        got = norm(r.stderr).splitlines()
        want = read(GOLDEN).splitlines()
        self.assertEqual(got, want)
        # the same exchange as smtplib's reference session, command by command
        if os.path.exists(REFERENCE):
            self.assertEqual(shape(got), shape(read(REFERENCE).splitlines()))
        # and the sink stored the message as ever
        self.assertEqual(len(self.stored()), 1)
        idx = [json.loads(l) for l in read(os.path.join(self.dir, "index.jsonl")).splitlines()]
        self.assertEqual((idx[0]["auth_user"], idx[0]["tls"], idx[0]["to"]),
                         (USER, True, ["friend@example.test"]))

    def test_transcript_says_the_replies_are_smtpscopes_own(self):
        sc = self.gmail()
        self.assertEqual(self.run_seed().returncode, 0)
        sc.expect("disconnect: QUIT")
        text = sc.text()
        self.assertIn("persona gmail: smtpscope answers as smtp.gmail.com:587 would, offline", text)
        self.assertIn("every reply in this session is smtpscope's own, not smtp.gmail.com's", text)
        replies = [l for l in text.splitlines() if "reply: b'" in l]
        self.assertTrue(replies)
        for l in replies:  # none shown as relayed from a server
            self.assertIn("smtpscope reply: b'", l)

    def test_wrong_password_fails_as_against_gmail(self):
        self.gmail()
        r = self.run_seed(password="wrong")
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("smtplib.SMTPAuthenticationError: (535, b'5.7.8 Username and Password not "
                      "accepted.", r.stderr)
        self.assertEqual(self.stored(), [])


class ScenarioTest(PersonaCase):
    def play(self, name, stage):
        """What the client hears at the scenario's stage."""
        if stage == "connect":
            c = self.raw()
            got = c.reply()
            self.assertEqual(c.sock.recv(100), b"")  # and the connection closes
            return got
        c = self.client(login=False)
        plain = base64.b64encode(f"\0{USER}\0{PASSWORD}".encode()).decode()
        r = c.cmd("AUTH PLAIN " + plain)
        if stage == "auth":
            return r
        self.assertEqual(r, "235 2.7.0 Accepted\r\n")
        r = c.cmd("MAIL FROM:<leehark@example.test>")
        if stage == "mail":
            return r
        c.cmd("RCPT TO:<friend@example.test>")
        self.assertTrue(c.cmd("DATA").startswith("354  Go ahead "))
        return c.cmd("Subject: big\r\n\r\nbody\r\n.")

    def test_each_scenario_for_the_run(self):
        for name, (stage, want) in SCENARIOS.items():
            with self.subTest(name):
                sc = self.gmail("--persona-scenario", name)
                self.assertEqual(norm(self.play(name, stage)), want)
                sc.expect(f"persona gmail, scenario {name} at ")
                self.assertEqual(self.stored(), [])
                self.restart()

    def test_each_scenario_through_fault(self):
        stages = {"auth": "auth", "mail": "mail", "eod": "eod", "connect": "connect"}
        for name, (stage, want) in SCENARIOS.items():
            with self.subTest(name):
                sc = self.gmail("--fault", f"{stages[stage]}=persona:{name}")
                self.assertEqual(norm(self.play(name, stage)), want)
                sc.expect("fault injected at")
                self.restart()

    def test_fault_rule_names_the_kth_time(self):
        self.gmail("--fault", "mail=persona:daily-limit#2")
        c = self.client()
        self.assertEqual(norm(c.cmd("MAIL FROM:<a@example.test>")), "250 2.1.0 OK ID - gsmtp\r\n")
        self.assertEqual(norm(c.cmd("RSET")), "250 2.1.5 Flushed ID - gsmtp\r\n")
        self.assertEqual(norm(c.cmd("MAIL FROM:<a@example.test>")), SCENARIOS["daily-limit"][1])

    def test_message_over_the_size_limit(self):
        self.gmail()
        c = self.client()
        self.assertEqual(norm(c.cmd("MAIL FROM:<a@example.test> SIZE=40000000")),
                         "552 5.3.4 Message size exceeds fixed maximum message size ID - gsmtp\r\n")


class RulesTest(PersonaCase):
    def test_auth_or_mail_before_starttls(self):
        self.gmail()
        c = self.client(tls=False, login=False)
        self.assertEqual(norm(c.cmd("AUTH PLAIN AGEAYg==")), NEED_TLS)
        self.assertEqual(norm(c.cmd("MAIL FROM:<a@example.test>")), NEED_TLS)
        # no AUTH offered before TLS
        self.assertNotIn("AUTH", c.cmd("EHLO again.example.test"))

    def test_mail_without_auth(self):
        self.gmail()
        c = self.client(login=False)
        self.assertEqual(norm(c.cmd("MAIL FROM:<a@example.test>")), NEED_AUTH)

    def test_command_pipelined_after_starttls(self):
        sc = self.gmail()
        c = self.client(tls=False, login=False)
        c.send("STARTTLS\r\nEHLO sneaky.example.test\r\n")
        self.assertEqual(norm(c.reply()), PIPELINED)
        # no TLS, and the pipelined EHLO was dropped: the next reply is NOOP's
        self.assertEqual(norm(c.cmd("NOOP")), "250 2.0.0 OK ID - gsmtp\r\n")
        sc.expect("client pipelined commands after STARTTLS")
        # STARTTLS alone still works
        c.starttls()

    def test_xoauth2_right_and_wrong_token(self):
        self.gmail()
        c = self.client(login=False)
        self.assertEqual(c.cmd("AUTH XOAUTH2 " + xoauth2(USER, TOKEN)), "235 2.7.0 Accepted\r\n")
        c = self.client(login=False)
        self.assertEqual(c.cmd("AUTH XOAUTH2 " + xoauth2(USER, "expired")), XOAUTH2_ERROR)
        self.assertEqual(norm(c.cmd("")), BAD_CREDENTIALS)
        # without an initial response: "334 " first
        c = self.client(login=False)
        self.assertEqual(c.cmd("AUTH XOAUTH2"), "334 \r\n")
        self.assertEqual(c.cmd(xoauth2(USER, TOKEN)), "235 2.7.0 Accepted\r\n")

    def test_login_exchange(self):
        self.gmail()
        c = self.client(login=False)
        self.assertEqual(c.cmd("AUTH LOGIN"), "334 VXNlcm5hbWU6\r\n")
        self.assertEqual(c.cmd(base64.b64encode(USER.encode()).decode()), "334 UGFzc3dvcmQ6\r\n")
        self.assertEqual(c.cmd(base64.b64encode(b"nope").decode()).split("\r\n")[0],
                         BAD_CREDENTIALS.split("\r\n")[0])
        self.assertEqual(norm(c.cmd("AUTH CRAM-MD5")),
                         "504 5.7.4 Unrecognized Authentication Type ID - gsmtp\r\n")

    def test_bad_options(self):
        cases = [
            (["--sink", self.dir, "--persona", "yahoo"],
             "smtpscope: --persona yahoo: no such persona (there is: gmail)\n"),
            (["--sink", self.dir, "--persona", "gmail", "--persona-scenario", "nope"],
             "smtpscope: --persona-scenario nope: persona gmail has no such scenario "
             "(bad-credentials, app-password-required, too-many-logins, try-again-later, "
             "too-large, daily-limit)\n"),
            (["--persona", "gmail"], "smtpscope: --persona answers in place of a server: it "
             "needs --sink DIR or --replay FILE (see --help)\n"),
            (["--sink", self.dir, "--persona-user", "x"],
             "smtpscope: --persona-user goes with --persona NAME (see --help)\n"),
            (["--sink", self.dir, "--fault", "auth=persona:bad-credentials"],
             "smtpscope: --fault ...=persona:bad-credentials needs --persona\n"),
        ]
        for args, want in cases:
            with self.subTest(args):
                r = subprocess.run([h.BIN, "--listen", "127.0.0.1:0", *args],
                                   capture_output=True, text=True, timeout=20)
                self.assertEqual((r.returncode, r.stderr), (2, want))


class ReplayTest(PersonaCase):
    def test_replay_speaks_gmail_where_smtpscope_answers(self):
        rec = os.path.join(self.dir, "rec.jsonl")
        with open(rec, "w") as f:  # a recording without its greeting
            f.write(json.dumps({"session": 1, "key": "EHLO", "command": "EHLO x",
                                "reply": "250 recorded.example.test\r\n", "delay_ms": 0}) + "\n")
        self.scope = h.Scope("--replay", rec, "--persona", "gmail", ca=False)
        c = self.raw()
        self.assertEqual(norm(c.reply()), "220 smtp.gmail.com ESMTP ID - gsmtp\r\n")
        self.assertEqual(c.cmd("EHLO x"), "250-recorded.example.test\r\n250 STARTTLS\r\n")
        self.assertEqual(norm(c.cmd("QUIT")), "221 2.0.0 closing connection ID - gsmtp\r\n")


@unittest.skipUnless(shutil.which("swaks") and shutil.which("curl"), "swaks or curl missing")
class ClientsTest(PersonaCase):
    def test_swaks_login(self):
        self.gmail()
        r = subprocess.run(["swaks", "--server", f"127.0.0.1:{self.scope.port}", "--tls",
                            "--auth", "LOGIN", "--auth-user", USER, "--auth-password", PASSWORD,
                            "--from", USER, "--to", "friend@example.test"],
                           capture_output=True, text=True, timeout=60)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        out = norm(r.stdout)
        for want in ("<-  220 smtp.gmail.com ESMTP ID - gsmtp", "<~  235 2.7.0 Accepted",
                     "<~  250 2.0.0 OK  TIME ID - gsmtp",
                     "<~  221 2.0.0 closing connection ID - gsmtp"):
            self.assertIn(want, out)
        self.assertEqual(len(self.stored()), 1)

    def curl(self, *auth):
        msg = os.path.join(self.dir, "msg.txt")
        with open(msg, "w") as f:
            f.write("Subject: curl\r\n\r\nhi\r\n")
        return subprocess.run(["curl", "-sS", "-v", "--ssl-reqd", "-k",
                               f"smtp://127.0.0.1:{self.scope.port}", "--mail-from", USER,
                               "--mail-rcpt", "friend@example.test", "--upload-file", msg, *auth],
                              capture_output=True, text=True, timeout=60)

    def test_curl_password_and_oauth2_token(self):
        self.gmail()
        r = self.curl("--user", f"{USER}:{PASSWORD}")
        self.assertEqual(r.returncode, 0, r.stderr)
        r = self.curl("--user", USER, "--oauth2-bearer", TOKEN)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(len(self.stored()), 2)
        r = self.curl("--user", USER, "--oauth2-bearer", "expired")
        self.assertEqual(r.returncode, 67, r.stderr)  # CURLE_LOGIN_DENIED
        self.assertIn("535", r.stderr)
        self.assertEqual(len(self.stored()), 2)


if __name__ == "__main__":
    unittest.main()
