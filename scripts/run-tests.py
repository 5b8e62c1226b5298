#!/usr/bin/env python3
"""Runs every test binary of the workspace in two lanes, as `cargo test` would, in less time.

    python3 scripts/run-tests.py [--lanes N] [--list]

`cargo test --workspace` runs its ~80 test binaries one after another, and most of the slow
ones spend their time waiting: a live call speaks in real time, a SIP peer retransmits on a
timer, a cluster test waits out a dead node's lease. So the binaries run in lanes here. One
lane takes the *heavy* binaries (real-time calls whose ASR and TTS need a core; see HEAVY)
one at a time, longest first; the other lanes take the rest, longest first, and help with the
heavy ones only when no heavy one is running. Each binary runs as cargo runs it: from its
package's directory, with cargo's environment, its tests on threads inside it.

It builds first (`cargo test --no-run`, the same artifacts `cargo test` uses), then runs the
doc tests as one more job. The durations of the last run (kept beside the build, in
$CARGO_TARGET_DIR/waihu-test-times.json) order the next. Each binary's output is printed
whole when it ends, with progress (done/total, elapsed, estimate of what is left); failures
are repeated at the end and make the exit status non-zero. Extra arguments after `--` go to
every test binary (e.g. `-- --nocapture`). A binary still running after WAIHU_TEST_TIMEOUT_S
(default 1200) seconds is killed with everything it started and counted as failed.

测试分道并行运行：实时通话类（重）测试逐个运行，其余测试在另一道并行；失败汇总于末尾。
"""
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time

# Binaries that hold a core for most of their run (live calls: TTS, ASR and RTP in real
# time, a whole campaign per test). Two of them at once on two cores make each other's
# calls miss their audio deadlines, so they never overlap.
HEAVY = {
    "waihu::cluster_live",
    "waihu::crash",
    "waihu::faults",
    "waihu::live",
    "waihu::live_amd",
    "waihu::live_asr_server",
    "waihu::live_fallback_sms",
    "waihu::live_knowledge",
    "waihu::live_voiceprint",
    "waihu-speech::zhvoice",
    "waihu-llm::qwen",
}


def build():
    """`cargo test --no-run`; returns the test executables as (name, cwd, path)."""
    # --timings leaves cargo's per-crate build report in $CARGO_TARGET_DIR/cargo-timings/.
    cmd = ["cargo", "test", "--workspace", "--release", "--no-run", "--timings",
           "--message-format=json-render-diagnostics"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
    found = []
    for line in proc.stdout:
        try:
            msg = json.loads(line)
        except json.JSONDecodeError:
            continue
        if msg.get("reason") == "compiler-message":
            sys.stdout.write(msg.get("message", {}).get("rendered") or "")
        if msg.get("reason") != "compiler-artifact" or not msg.get("executable"):
            continue
        if not msg.get("profile", {}).get("test"):
            continue
        target = msg["target"]
        pkg = msg["package_id"]
        # "path+file:///x/crates/cli#waihu@0.1.0" or "...#0.1.0" (name from the path).
        frag = pkg.split("#", 1)[-1]
        pkg_name = frag.split("@")[0] if "@" in frag else os.path.basename(pkg.split("#")[0])
        kind = target["kind"][0]
        name = f"{pkg_name}::{target['name']}" if kind == "test" else f"{pkg_name}::{kind}:{target['name']}"
        found.append((name, os.path.dirname(msg["manifest_path"]), msg["executable"], pkg_name))
    if proc.wait() != 0:
        sys.exit(f"run-tests: `{' '.join(cmd)}` failed (exit {proc.returncode})")
    return found


class Runner:
    def __init__(self, jobs, times, lanes):
        self.lock = threading.Lock()
        self.times = times
        self.lanes = lanes
        # Longest first (by the last run; unknown ones count as long, so they start early).
        key = lambda j: -times.get(j["name"], 120.0)
        self.heavy = sorted([j for j in jobs if j["name"] in HEAVY], key=key)
        self.light = sorted([j for j in jobs if j["name"] not in HEAVY], key=key)
        self.heavy_running = False
        self.total = len(jobs)
        self.done = 0
        self.failed = []
        self.new_times = {}
        self.start = time.monotonic()
        self.estimate = sum(times.get(j["name"], 60.0) for j in jobs)
        # No test binary here takes 3 minutes; one that runs 20 hangs.
        self.job_timeout = float(os.environ.get("WAIHU_TEST_TIMEOUT_S", "1200"))
        self.finished_estimate = 0.0

    def take(self, lane):
        """The next job for this lane: a job, "wait" (a heavy one is running and only heavy
        ones are left) or None (nothing left)."""
        with self.lock:
            if self.heavy and not self.heavy_running and (lane == 0 or not self.light):
                self.heavy_running = True
                return self.heavy.pop(0)
            if self.light:
                return self.light.pop(0)
            return "wait" if self.heavy else None

    def run_job(self, job):
        t0 = time.monotonic()
        with tempfile.TemporaryFile(mode="w+", encoding="utf-8", errors="replace") as out:
            env = dict(os.environ)
            env["CARGO_MANIFEST_DIR"] = job["cwd"]
            env["CARGO_PKG_NAME"] = job["pkg"]
            # Its own process group, so a hung binary is stopped with everything it started.
            proc = subprocess.Popen(job["cmd"], cwd=job["cwd"], stdin=subprocess.DEVNULL, stdout=out,
                                    stderr=subprocess.STDOUT, env=env, start_new_session=True)
            try:
                code = proc.wait(timeout=self.job_timeout)
            except subprocess.TimeoutExpired:
                try:
                    os.killpg(proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                proc.wait()
                code = f"timed out after {self.job_timeout:.0f} s"
            out.seek(0)
            text = out.read()
        secs = time.monotonic() - t0
        with self.lock:
            self.done += 1
            if job["name"] in HEAVY:
                self.heavy_running = False
            self.new_times[job["name"]] = secs
            self.finished_estimate += self.times.get(job["name"], 60.0)
            elapsed = time.monotonic() - self.start
            left = max(self.estimate - self.finished_estimate, 0.0) / max(self.lanes, 1)
            status = "ok" if code == 0 else f"FAILED ({code if isinstance(code, str) else f'exit {code}'})"
            sys.stdout.write(f"\n==== {job['name']}\n{text}")
            sys.stdout.write(
                f"==== [{self.done}/{self.total}] {job['name']}: {status} in {secs:.1f} s"
                f" (elapsed {elapsed / 60:.1f} min, about {left / 60:.1f} min of tests left)\n")
            sys.stdout.flush()
            if code != 0:
                self.failed.append((job["name"], text))

    def lane(self, n):
        while True:
            job = self.take(n)
            if job is None:
                return
            if job == "wait":
                time.sleep(0.2)
                continue
            self.run_job(job)


def main():
    argv = sys.argv[1:]
    test_args = []
    if "--" in argv:
        i = argv.index("--")
        argv, test_args = argv[:i], argv[i + 1:]
    lanes = 2
    if "--lanes" in argv:
        lanes = max(1, int(argv[argv.index("--lanes") + 1]))
    os.chdir(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
    target = os.environ.get("CARGO_TARGET_DIR", "target")
    times_file = os.path.join(target, "waihu-test-times.json")
    try:
        with open(times_file) as f:
            times = json.load(f)
    except (OSError, ValueError):
        times = {}

    found = build()
    jobs = [{"name": n, "cwd": cwd, "cmd": [exe] + test_args, "pkg": pkg} for n, cwd, exe, pkg in found]
    # The doc tests compile each example: one more job, run by cargo.
    jobs.append({"name": "doc-tests", "cwd": os.getcwd(), "pkg": "",
                 "cmd": ["cargo", "test", "--workspace", "--release", "--doc", "--"] + test_args})
    if "--list" in argv:
        for j in jobs:
            print(j["name"], "(heavy)" if j["name"] in HEAVY else "", j["cmd"][0])
        return 0
    print(f"run-tests: {len(jobs)} test jobs in {lanes} lanes "
          f"(heavy ones one at a time; last run's total {sum(times.values()) / 60:.1f} min of work)", flush=True)
    r = Runner(jobs, times, lanes)
    threads = [threading.Thread(target=r.lane, args=(n,)) for n in range(lanes)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    times.update(r.new_times)
    try:
        with open(times_file, "w") as f:
            json.dump(times, f, indent=1, sort_keys=True)
    except OSError:
        pass
    wall = time.monotonic() - r.start
    work = sum(r.new_times.values())
    slow = sorted(r.new_times.items(), key=lambda kv: -kv[1])[:8]
    print(f"\nrun-tests: {r.done} jobs in {wall / 60:.1f} min ({work / 60:.1f} min of work run in parallel); "
          "slowest: " + ", ".join(f"{n} {s:.0f} s" for n, s in slow))
    if r.failed:
        print(f"\nrun-tests: {len(r.failed)} FAILED:")
        for name, text in r.failed:
            print(f"---- {name} (last lines)\n" + "\n".join(text.splitlines()[-40:]))
        print("failed: " + ", ".join(n for n, _ in r.failed))
        return 1
    print("run-tests: all passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
