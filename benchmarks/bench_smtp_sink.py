"""`newsletter send` next to Postfix's C `smtp-source` and bare aiosmtplib, all into Postfix's `smtp-sink`.

    python benchmarks/bench_smtp_sink.py                      # 10,000 subscribers, 2 rounds
    python benchmarks/bench_smtp_sink.py --subscribers 20000 --rounds 3

One sink (Postfix's `smtp-sink`, C, on a loopback port) takes, in turn, in one run:

- C limit: `smtp-source` sending one of our pre-built messages (-F) over the same number of
  connections, kept open (-d);
- aiosmtplib: bare `aiosmtplib.SMTP.sendmail` of pre-built messages composed by our pipeline;
- our sending loop (`delivery.smtp.send_one`) on the same messages, with PIPELINING (MAIL, RCPT
  and DATA in one write; smtp-sink offers it) and one command at a time, with its CPU per message;
- end to end: the real CLI, `newsletter send`, in its own process: a 10,000-subscriber list with
  1-3 keywords each (words and word pairs of the sample papers' titles), semantic ranking on,
  feedback links on (a base URL and a secret), VERP on (a bounce address). Timed as the whole
  command (start-up, list import, ranking and recording included) and as its delivery phase
  (first to last message counted at the sink).

Prints each rate, the ratios (to aiosmtplib, to the C limit), the digest's size on the wire,
and the sender process's own CPU per message. Debian's `postfix` package is installed when
`smtp-sink` or `smtp-source` is missing (as .ci/run installs chromium); if it cannot be, the
script says so and exits 1. A sink in Python would measure the sink, not the sender.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

from bench_send import vocabulary, write_config  # the readers' keywords and the config: one definition

SENDER = "digest@example.org"
CONNECTIONS = 4
_SBIN = ("/usr/sbin", "/usr/local/sbin")


def postfix_tool(name: str) -> str | None:
    """Where one of Postfix's test tools is: they live in sbin, often not on a user's PATH."""
    return shutil.which(name) or shutil.which(name, path=os.pathsep.join(_SBIN))


def ensure_postfix() -> tuple[str, str]:
    """smtp-sink and smtp-source, installing Debian's postfix for them if they are missing."""
    if not (postfix_tool("smtp-sink") and postfix_tool("smtp-source")):
        print("--- installing Debian's postfix for smtp-sink and smtp-source", flush=True)
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        if shutil.which("apt-get"):
            subprocess.run(["apt-get", "update", "-qq"], env=env, check=False)
            subprocess.run(["apt-get", "install", "-y", "-qq", "postfix"], env=env, check=False)
    sink, source = postfix_tool("smtp-sink"), postfix_tool("smtp-source")
    if not (sink and source):
        raise SystemExit(
            "Error: smtp-sink and smtp-source are missing and Debian's postfix could not be installed, "
            "on this machine; install postfix (apt-get install postfix) and run again"
        )
    return sink, source


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class Sink:
    """Postfix's smtp-sink on loopback; its running counter (-c) is read to time deliveries."""

    def __init__(self, binary: str) -> None:
        self.port = free_port()
        user = ["-u", "nobody"] if os.geteuid() == 0 else []  # it refuses to run as root otherwise
        self.process = subprocess.Popen(
            [binary, "-c", *user, f"127.0.0.1:{self.port}", "1024"],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
        )
        self.count = 0
        self.stamps: list[tuple[float, int]] = []  # (when, messages so far) at each counter update
        self._lock = threading.Lock()
        threading.Thread(target=self._read, daemon=True).start()
        for _ in range(100):
            with socket.socket() as probe:
                if probe.connect_ex(("127.0.0.1", self.port)) == 0:
                    return
            time.sleep(0.05)
        raise SystemExit(f"Error: smtp-sink did not start, on 127.0.0.1:{self.port}")

    def _read(self) -> None:
        assert self.process.stdout is not None
        pending = b""
        while chunk := os.read(self.process.stdout.fileno(), 65536):
            now = time.perf_counter()
            pending += chunk
            found = re.findall(rb"mesg=(\d+)", pending)
            pending = pending[-64:]
            if found:
                with self._lock:
                    self.count = int(found[-1])
                    self.stamps.append((now, self.count))

    def mark(self) -> int:
        with self._lock:
            return self.count

    def delivery_seconds(self, start_count: int, total: int) -> float:
        """From the first message after `start_count` to the last of `total` messages."""
        with self._lock:
            stamps = list(self.stamps)
        first = next(t for t, n in stamps if n > start_count)
        last = next(t for t, n in stamps if n >= start_count + total)
        return last - first

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait()


@dataclass
class Ledger:
    rates: dict[str, list[float]]

    def add(self, what: str, rate: float) -> None:
        self.rates.setdefault(what, []).append(rate)

    def best(self, what: str) -> float:
        return max(self.rates[what])


def readers(count: int, seed: int = 24) -> Iterator[tuple[str, str, list[str]]]:
    """`count` readers (address, name, keywords) with 1-3 keywords each from the sample papers' titles."""
    rnd = random.Random(seed)
    vocab = vocabulary()
    for i in range(count):
        yield f"reader{i}@example.com", f"Reader {i}", rnd.sample(vocab, rnd.randint(1, 3))


def write_list(path: Path, count: int) -> None:
    with path.open("w", encoding="utf-8") as handle:
        handle.write("email,name,keywords,status,subscribed_at,unsubscribed_at\n")
        for email, name, keywords in readers(count):
            handle.write(f"{email},{name},{'; '.join(keywords)},active,2026-10-01T00:00:00+00:00,\n")


def fresh_folder(root: Path, subscribers: int, port: int, name: str) -> Path:
    """A config folder with the list as a CSV and no database: what a first send starts from."""
    folder = root / name
    (folder / "subscribers").mkdir(parents=True)
    shutil.copy(root / "bench.csv", folder / "subscribers" / "bench.csv")
    write_config(folder, port, CONNECTIONS, features=True)  # semantic ranking, feedback, VERP
    return folder


def prebuilt(folder: Path, n: int = 200) -> tuple[list[tuple[str, bytes]], list[int]]:
    """The first `n` readers' messages as `send` composes them, and the 10-paper ones' sizes on the wire."""
    from newsletter.models import Subscriber
    from newsletter.pipeline.build import DigestBuilder
    from newsletter.pipeline.issue import LinkSigner, prepare_issue
    from newsletter.settings import load_settings

    settings = load_settings(folder / "newsletter.toml")
    issue = prepare_issue(settings)
    builder = DigestBuilder(settings, issue, LinkSigner.for_run(settings, False))
    messages, ten = [], []
    for email, name, keywords in readers(n * 2):
        built = builder.build(Subscriber(email, name, keywords))
        if built is None:
            continue
        messages.append((built.message.recipient, built.message.data))
        if len(built.picks) == 10:
            ten.append(len(built.message.wire))
        if len(messages) == n:
            break
    return messages, ten


def run_source(binary: str, sink: Sink, message: bytes, total: int, folder: Path) -> float:
    """The C limit: smtp-source sends one of our messages `total` times, connections kept open."""
    sample = folder / "message.eml"
    sample.write_bytes(message.replace(b"\r\n", b"\n"))
    started = time.perf_counter()
    subprocess.run(
        [binary, "-d", "-s", str(CONNECTIONS), "-m", str(total), "-F", str(sample), "-f", SENDER,
         "-t", "reader@example.com", f"127.0.0.1:{sink.port}"],
        check=True,
    )  # fmt: skip
    return total / (time.perf_counter() - started)


async def _aiosmtplib(port: int, messages: list[tuple[str, bytes]], total: int) -> None:
    import aiosmtplib

    remaining = iter(range(total))

    async def worker() -> None:
        client = aiosmtplib.SMTP(hostname="127.0.0.1", port=port, start_tls=False)
        await client.connect()
        for i in remaining:
            recipient, data = messages[i % len(messages)]
            await client.sendmail(SENDER, [recipient], data)
        await client.quit()

    await asyncio.gather(*(worker() for _ in range(CONNECTIONS)))


def run_aiosmtplib(sink: Sink, messages: list[tuple[str, bytes]], total: int) -> float:
    started = time.perf_counter()
    asyncio.run(_aiosmtplib(sink.port, messages, total))
    return total / (time.perf_counter() - started)


async def _sender(port: int, messages: list[tuple[str, bytes]], total: int, pipelining: bool) -> None:
    from newsletter.delivery.smtp import SmtpTarget, close_connection, open_connection, send_one
    from newsletter.mail.compose import ComposedMessage
    from newsletter.mail.wire import to_wire

    composed = [
        ComposedMessage(f"<{i}@bench>", rcpt, to_wire(data)) for i, (rcpt, data) in enumerate(messages)
    ]
    remaining = iter(range(total))

    async def worker() -> None:
        client = await open_connection(SmtpTarget(host="127.0.0.1", port=port))
        for i in remaining:
            await send_one(client, SENDER, composed[i % len(composed)], pipelining=pipelining)
        await close_connection(client)

    await asyncio.gather(*(worker() for _ in range(CONNECTIONS)))


def run_sender(
    sink: Sink, messages: list[tuple[str, bytes]], total: int, pipelining: bool
) -> tuple[float, float]:
    """newsletter's own sending loop on pre-built messages: msg/s and its CPU ms per message."""
    started, cpu = time.perf_counter(), time.process_time()
    asyncio.run(_sender(sink.port, messages, total, pipelining))
    return total / (time.perf_counter() - started), 1000 * (time.process_time() - cpu) / total


def _own_cpu(pid: int) -> float | None:
    """User + system CPU of one process, without its children (Linux /proc)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run_cli(folder: Path, sink: Sink, total: int) -> tuple[float, float, float, float]:
    """`newsletter send` as a user runs it: msg/s (whole, delivery) and CPU ms/msg (sender, builders)."""
    # The CLI of this checkout (an install may be a copy of other code): `python -m newsletter`.
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    command = [sys.executable, "-m", "newsletter"]
    before = sink.mark()
    out, err = folder / "send.json", folder / "send.err"
    started = time.perf_counter()
    with out.open("wb") as stdout, err.open("wb") as stderr:
        run = subprocess.Popen(
            [*command, "--config", str(folder / "newsletter.toml"), "send", "--json"],
            cwd=folder,
            env=env,
            stdout=stdout,
            stderr=stderr,
        )
    own = 0.0
    while True:  # the sender's own CPU, sampled until it exits (its last 20 ms are not seen)
        pid, status, usage = os.wait4(run.pid, os.WNOHANG)
        if pid:
            break
        own = _own_cpu(run.pid) or own
        time.sleep(0.02)
    elapsed = time.perf_counter() - started
    run.returncode = os.waitstatus_to_exitcode(status)
    if run.returncode:
        raise SystemExit(f"newsletter send failed ({run.returncode}): {err.read_text()[-2000:]}")
    report = json.loads(out.read_text())
    sent = report["sent"]
    if sent != total - report["empty"]:  # readers whose topics had nothing this week get no mail
        raise SystemExit(f"newsletter send sent {sent} of {total} ({report['empty']} with nothing new)")
    time.sleep(0.3)  # the sink's last counter line
    tree = usage.ru_utime + usage.ru_stime  # the command and the builder processes it waited for
    delivery = sink.delivery_seconds(before, sent)
    return sent / elapsed, sent / delivery, 1000 * own / sent, 1000 * max(tree - own, 0.0) / sent


def bench(subscribers: int, rounds: int) -> None:
    sink_binary, source_binary = ensure_postfix()
    sink = Sink(sink_binary)
    ledger = Ledger({})
    cpu: list[tuple[float, float]] = []
    loop_cpu: dict[str, list[float]] = {}
    try:
        with tempfile.TemporaryDirectory() as tmp:
            root = Path(tmp)
            write_list(root / "bench.csv", subscribers)
            messages, ten = prebuilt(fresh_folder(root, subscribers, sink.port, "prebuilt"))
            mean = statistics.mean(len(data) for _, data in messages)
            print(
                f"{subscribers} subscribers (1-3 keywords), {CONNECTIONS} connections, Postfix smtp-sink;"
                f" message on the wire: mean {mean / 1024:.1f} KiB, 10-paper digest"
                f" {statistics.mean(ten) / 1024:.1f} KiB (max {max(ten) / 1024:.1f} KiB, {len(ten)} seen)",
                flush=True,
            )
            for round_no in range(1, rounds + 1):
                c_limit = run_source(source_binary, sink, messages[0][1], subscribers, root)
                ledger.add("C limit", c_limit)
                raw = run_aiosmtplib(sink, messages, subscribers)
                ledger.add("aiosmtplib", raw)
                for pipelining, what in ((True, "sender, pipelined"), (False, "sender, one by one")):
                    rate, sender_cpu = run_sender(sink, messages, subscribers, pipelining)
                    ledger.add(what, rate)
                    loop_cpu.setdefault(what, []).append(sender_cpu)
                    print(f"round {round_no}: our sending loop on pre-built messages, {what.split(', ')[1]}:"
                          f" {rate:.0f} msg/s, {sender_cpu:.3f} ms CPU/msg", flush=True)  # fmt: skip
                whole, delivery, sender_ms, builders_ms = run_cli(
                    fresh_folder(root, subscribers, sink.port, f"round{round_no}"), sink, subscribers
                )
                ledger.add("end to end", whole)
                ledger.add("delivery phase", delivery)
                cpu.append((sender_ms, builders_ms))
                print(
                    f"round {round_no}: C limit {c_limit:6.0f} msg/s | aiosmtplib {raw:6.0f} msg/s | "
                    f"newsletter send {whole:6.0f} msg/s whole command, {delivery:6.0f} msg/s delivery phase"
                    f" | sender CPU {sender_ms:.3f} ms/msg, builders {builders_ms:.3f} ms/msg"
                    f" | load average {os.getloadavg()[0]:.1f}",
                    flush=True,
                )
    finally:
        sink.stop()
    c_limit, raw = ledger.best("C limit"), ledger.best("aiosmtplib")
    whole, delivery = ledger.best("end to end"), ledger.best("delivery phase")
    print(f"best of {rounds}: C limit {c_limit:.0f}, aiosmtplib {raw:.0f}, newsletter send {whole:.0f}"
          f" (delivery phase {delivery:.0f}) msg/s")  # fmt: skip
    print(f"ratios: newsletter send / aiosmtplib {whole / raw:.2f} (delivery phase {delivery / raw:.2f}),"
          f" newsletter send / C limit {whole / c_limit:.2f} (delivery phase {delivery / c_limit:.2f}),"
          f" aiosmtplib / C limit {raw / c_limit:.2f}")  # fmt: skip
    piped, single = ledger.best("sender, pipelined"), ledger.best("sender, one by one")
    print(f"our sending loop, pre-built messages: pipelined {piped:.0f} msg/s"
          f" ({min(loop_cpu['sender, pipelined']):.3f} ms CPU/msg, {piped / raw:.2f} of aiosmtplib),"
          f" one by one {single:.0f} msg/s ({min(loop_cpu['sender, one by one']):.3f} ms)")  # fmt: skip
    print(f"sender CPU per message (whole command, its own process): best {min(c for c, _ in cpu):.3f} ms,"
          f" builder processes {min(b for _, b in cpu):.3f} ms")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--subscribers", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    bench(args.subscribers, args.rounds)


if __name__ == "__main__":
    main()
