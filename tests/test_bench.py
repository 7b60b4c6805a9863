"""bench/ builds and its tools complete a tiny run correctly (benchmarks
themselves are not tests: see bench/run and docs/benchmarks.md)."""
import json
import os
import signal
import subprocess
import time
import unittest

import harness as h

BENCH = os.path.join(os.path.dirname(h.BIN), "bench")


class BenchToolsTest(unittest.TestCase):
    def run_load(self, port, *args):
        r = subprocess.run([os.path.join(BENCH, "smtpload"), "--target", f"127.0.0.1:{port}",
                            "--json", *args], capture_output=True, text=True, timeout=120)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        return json.loads(r.stdout.splitlines()[-1])

    def test_tiny_runs(self):
        port = h.free_port()
        sink = subprocess.Popen([os.path.join(BENCH, "smtpsink"), "--listen", f"127.0.0.1:{port}"],
                                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        try:
            time.sleep(0.3)
            a = self.run_load(port, "--messages", "20", "--concurrency", "2")
            b = self.run_load(port, "--starttls", "--messages", "20", "--concurrency", "4",
                              "--resume", "--pipelining", "--size", "20000")
            c = self.run_load(port, "--starttls", "--messages", "30", "--per-session", "10",
                              "--auth")
            for r, n in ((a, 20), (b, 20), (c, 30)):
                self.assertEqual(r["errors"], 0)
                self.assertGreaterEqual(r["messages"], n)
                self.assertIn("p50_us", r["latency"]["mail"])
            self.assertGreater(b["resumed"], 10)  # the first handshakes are full ones
            self.assertEqual(c["sessions"], 3)
            # smtpload through smtpscope to the sink
            sc = h.Scope("--upstream", f"127.0.0.1:{port}", "--insecure", "--quiet")
            try:
                d = self.run_load(sc.port, "--messages", "10", "--concurrency", "2")
                self.assertEqual(d["errors"], 0)
            finally:
                rc, err = sc.stop()
            h.assert_clean_exit(self, rc, err)
            self.assertIn("10 message(s) relayed", sc.text())
        finally:
            sink.send_signal(signal.SIGTERM)
            out, _ = sink.communicate(timeout=10)
        stats = json.loads(out.splitlines()[-1])
        self.assertGreaterEqual(stats["messages"], 80)
        self.assertGreater(stats["bytes"], 20 * 20000)

    def test_storekeep(self):
        """bench/storekeep fills a store of 300 and adds 1000 more: both
        timed, each add evicting the oldest."""
        r = subprocess.run([os.path.join(BENCH, "storekeep"), "300", "1000"], capture_output=True,
                           text=True, timeout=60)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertRegex(r.stdout, r"^keep 300: filling [0-9.]+ us/add, full [0-9.]+ us/add "
                                   r"\(1000 adds\)\n$")
        r = subprocess.run([os.path.join(BENCH, "storekeep")], capture_output=True, text=True,
                           timeout=60)
        self.assertEqual((r.returncode, r.stderr), (2, "usage: storekeep KEEP [MORE]\n"))


if __name__ == "__main__":
    unittest.main()
