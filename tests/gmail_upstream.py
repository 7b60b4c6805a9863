"""A Gmail-like upstream that logs clients in as Gmail does, and a token
command for smtpscope's --upstream-token-cmd.

GmailUpstream is harness.Upstream's aiosmtpd server (STARTTLS required, AUTH
only inside TLS, MAIL only after AUTH) with Gmail's mechanisms and answers:

  XOAUTH2, OAUTHBEARER  a good token logs in (235 2.7.0); any other token
                        gets Gmail's error exchange: 334 and base64 JSON
                        {"status":"400","schemes":"Bearer","scope":...},
                        the client's answer is read (XOAUTH2: an empty line;
                        OAUTHBEARER: base64 of ^A), then 535 5.7.8 (or 454
                        4.7.0 Too many login attempts, throttle=True)
  PLAIN, LOGIN          the app password logs in; another password gets
                        535 5.7.8, or 534 5.7.9 (Application-specific
                        password required) with plain_reply="534"

Every attempt is kept in .auth.attempts as a dict: mechanism, user,
secret, ok, answer (what the client sent after the error 334), and for
OAUTHBEARER host and port. offer= limits the mechanisms in EHLO;
implicit=True speaks TLS from the start (port 465's way).
Standard library and Debian's python3-aiosmtpd only.
"""
import base64
import json
import os
import stat
import tempfile
import threading

from aiosmtpd.smtp import AuthResult, LoginPassword

import harness as h

GOOD_TOKEN = "ya29.GOOD-token_0123456789abcdefghij"
BAD_TOKEN = "ya29.EXPIRED-token_9876543210zyxwv"
APP_PASSWORD = "abcdefghijklmnop"  # 16 letters, as Gmail's app passwords

GMAIL_ERROR = {"status": "400", "schemes": "Bearer", "scope": "https://mail.google.com/"}
R535 = ("535-5.7.8 Username and Password not accepted. For more information, go to\r\n"
        "535 5.7.8  https://support.google.com/mail/?p=BadCredentials x-gsmtp")
R534 = ("534-5.7.9 Application-specific password required. For more information, go to\r\n"
        "534 5.7.9  https://support.google.com/mail/?p=InvalidSecondFactor x-gsmtp")
R454 = "454 4.7.0 Too many login attempts, please try again later. x-gsmtp"

MECHS = ("XOAUTH2", "OAUTHBEARER", "PLAIN", "LOGIN")


class GmailAuth(h.Recorder):
    """The handler: h.Recorder (messages, EHLO names) and Gmail's logins."""

    def __init__(self, user=h.USER, token=GOOD_TOKEN, password=APP_PASSWORD, plain_reply="535",
                 throttle=False):
        super().__init__()
        self.user, self.token, self.password = user, token, password
        self.plain_reply, self.throttle = plain_reply, throttle
        self.attempts = []

    def _note(self, **kw):
        with self.lock:
            self.attempts.append(kw)

    def refusal(self, plain=False):
        if self.throttle:
            return R454
        return R534 if plain and self.plain_reply == "534" else R535

    async def auth_XOAUTH2(self, server, args):
        return await self._oauth(server, args, "XOAUTH2")

    async def auth_OAUTHBEARER(self, server, args):
        return await self._oauth(server, args, "OAUTHBEARER")

    async def _oauth(self, server, args, mech):
        if len(args) > 1:
            blob = base64.b64decode(args[1], validate=True)
        else:
            blob = await server.challenge_auth("")
        fields = blob.split(b"\x01")
        info = {"mechanism": mech, "user": None, "secret": None, "raw": blob}
        if mech == "OAUTHBEARER":
            gs2 = fields[0].split(b",")  # n,a=USER,
            info["user"] = gs2[1][2:].decode().replace("=2C", ",").replace("=3D", "=")
        for f in fields:
            if f.startswith(b"user="):
                info["user"] = f[5:].decode()
            elif f.startswith(b"host="):
                info["host"] = f[5:].decode()
            elif f.startswith(b"port="):
                info["port"] = f[5:].decode()
            elif f.startswith(b"auth=Bearer "):
                info["secret"] = f[12:].decode()
        well_formed = blob.endswith(b"\x01\x01")
        if well_formed and info["user"] == self.user and info["secret"] == self.token:
            self._note(ok=True, answer=None, **info)
            return AuthResult(success=True, auth_data=LoginPassword(self.user.encode(), b""))
        # Gmail: the error as base64 JSON in a 334, the client's answer, 535
        await server.push("334 " + base64.b64encode(json.dumps(
            GMAIL_ERROR, separators=(",", ":")).encode()).decode())
        answer = await server._reader.readline()
        self._note(ok=False, answer=answer, **info)
        await server.push(self.refusal())
        return AuthResult(success=False, handled=True)

    def authenticate(self, server, session, envelope, mechanism, auth_data):
        ok = isinstance(auth_data, LoginPassword) and \
            auth_data.login.decode() == self.user and auth_data.password.decode() == self.password
        self._note(mechanism=mechanism, user=auth_data.login.decode(),
                   secret=auth_data.password.decode(), ok=ok, answer=None)
        if ok:
            return AuthResult(success=True, auth_data=auth_data)
        return AuthResult(success=False, handled=False, message=self.refusal(plain=True))

    def ok_attempts(self):
        with self.lock:
            return [a for a in self.attempts if a["ok"]]


class GmailUpstream(h.Upstream):
    """harness.Upstream with GmailAuth's logins, offering the mechanisms
    named in offer (EHLO lists them inside TLS)."""

    def __init__(self, offer=MECHS, host="localhost", implicit=False, **auth):
        self.recorder = self.auth = GmailAuth(**auth)
        self.port = h.free_port(host)
        # implicit TLS (as smtp.gmail.com:465): TLS from the start; aiosmtpd
        # then knows no STARTTLS, and would not offer AUTH with auth_require_tls
        tls = ({"ssl_context": h.certs().context("server"), "auth_require_tls": False}
               if implicit else
               {"tls_context": h.certs().context("server"), "require_starttls": True,
                "auth_require_tls": True})
        self.controller = h.BacklogController(
            self.auth, hostname=host, port=self.port, server_hostname="smtp.gmail.test",
            authenticator=self.auth.authenticate, auth_required=True,
            auth_exclude_mechanism=[m for m in MECHS if m not in offer], **tls)
        self.controller.start()


class TokenCommand:
    """A token command for --upstream-token-cmd: run N does what the shell
    snippet runs[N-1] says (the last one for every later run), and counts
    its runs in a file."""

    def __init__(self, *runs):
        self.dir = tempfile.mkdtemp(prefix="token-", dir=h.certs().dir)
        for i, snippet in enumerate(runs, 1):
            with open(os.path.join(self.dir, f"run.{i}"), "w") as f:
                f.write(snippet + "\n")
        with open(os.path.join(self.dir, "run.last"), "w") as f:
            f.write(runs[-1] + "\n")
        self.path = os.path.join(self.dir, "token-cmd")
        with open(self.path, "w") as f:
            f.write('#!/bin/sh\nd="$(dirname "$0")"\n'
                    'n=$(cat "$d/runs" 2>/dev/null || echo 0); n=$((n+1)); echo $n > "$d/runs"\n'
                    'echo $$ > "$d/pid.$n"\n'
                    'if [ -f "$d/run.$n" ]; then . "$d/run.$n"; else . "$d/run.last"; fi\n')
        os.chmod(self.path, stat.S_IRWXU)

    def runs(self):
        try:
            with open(os.path.join(self.dir, "runs")) as f:
                return int(f.read())
        except OSError:
            return 0

    def pid(self, n):
        with open(os.path.join(self.dir, f"pid.{n}")) as f:
            return int(f.read())


def b64_fragments(secret):
    """Base64 forms that would give secret away wherever it sits in a
    base64 string: its own, and the middle of it at each of the three
    alignments (the characters that depend on the secret alone)."""
    raw = secret.encode() if isinstance(secret, str) else secret
    out = {base64.b64encode(raw).decode().rstrip("=")}
    for pad in (1, 2):
        enc = base64.b64encode(b"\0" * pad + raw).decode().rstrip("=")
        out.add(enc[4:-2])  # what the leading pad and the last group touch is cut
    return {f for f in out if len(f) >= 8}
