"""How fast `send` delivers personalised digests, next to the ceiling of plain aiosmtplib on the same sink.

    python benchmarks/bench_send.py                    # 20,000 subscribers, 3 rounds
    python benchmarks/bench_send.py --memory 100000    # peak RSS of one run at 100,000 subscribers
    python benchmarks/bench_send.py --memory 100000 --code /tmp/old-checkout   # the same run on other code

End to end = run_send with a real-SMTP config: load and rank papers, select per subscriber,
render, compose, ledger, deliver over `connections` aiosmtplib connections. Ceiling = plain
aiosmtplib sending pre-built messages (composed by the same pipeline) over the same number of
connections to the same sink. The sink is a minimal asyncio SMTP responder in its own process
that only counts messages, so it is not the bottleneck (its CPU per message is printed).

For reference, "delivery only" sends the same pre-built messages through newsletter's own
sender (messages framed for DATA where they are built, no ledger): the most `send` could do
if selecting, rendering and composing cost nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import random
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable
from multiprocessing.sharedctypes import Synchronized
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import itertools

from newsletter.mail.compose import ComposedMessage
from newsletter.pipeline.send import SendOptions, run_send
from newsletter.settings import load_settings
from newsletter.store import forget_databases
from newsletter.store.deliveries import Attempt, DeliveryLedger, DeliveryResult


class RecordingCost:
    """Time spent in DeliveryLedger.record (the writer thread's commits), wall and CPU, while on."""

    def __init__(self) -> None:
        self.calls = 0
        self.wall = 0.0
        self.cpu = 0.0
        self._record = DeliveryLedger.record

    def __enter__(self) -> RecordingCost:
        original = self._record

        def record(
            ledger: DeliveryLedger, outcomes: Iterable[DeliveryResult] = (), attempts: Iterable[Attempt] = ()
        ) -> frozenset[str]:
            started, cpu = time.perf_counter(), time.thread_time()
            try:
                return original(ledger, outcomes, attempts)  # the refused: the dispatcher waits on it
            finally:
                self.calls += 1
                self.wall += time.perf_counter() - started
                self.cpu += time.thread_time() - cpu

        DeliveryLedger.record = record  # type: ignore[method-assign]  # a timed wrapper, while on
        return self

    def __exit__(self, *exc: object) -> None:
        DeliveryLedger.record = self._record  # type: ignore[method-assign]


class CountingSink(asyncio.Protocol):
    """Just enough SMTP to take messages: answers commands, reads DATA up to CRLF.CRLF, counts."""

    count: Synchronized[int]
    transport: asyncio.Transport

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)  # a TCP server's transport is a stream
        self.transport = transport
        self.buffer = b""
        self.in_data = False
        transport.write(b"220 sink ESMTP\r\n")

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while True:
            if self.in_data:
                end = self.buffer.find(b"\r\n.\r\n")
                if end < 0:
                    self.buffer = self.buffer[-4:] if len(self.buffer) > 4 else self.buffer
                    return
                self.buffer = self.buffer[end + 5 :]
                self.in_data = False
                with CountingSink.count.get_lock():
                    CountingSink.count.value += 1
                self.transport.write(b"250 2.0.0 queued\r\n")
                continue
            line_end = self.buffer.find(b"\r\n")
            if line_end < 0:
                return
            line, self.buffer = self.buffer[:line_end], self.buffer[line_end + 2 :]
            self._command(line[:4].upper())

    def _command(self, verb: bytes) -> None:
        write = self.transport.write
        if verb in (b"EHLO", b"HELO"):
            write(b"250-sink\r\n250 8BITMIME\r\n")
        elif verb == b"DATA":
            self.in_data = True
            self.buffer = b"\r\n" + self.buffer  # so a message that is just "." still ends
            write(b"354 go ahead\r\n")
        elif verb == b"QUIT":
            write(b"221 bye\r\n")
            self.transport.close()
        else:
            write(b"250 ok\r\n")


def _serve_sink(port_out: multiprocessing.connection.Connection, count: Synchronized[int]) -> None:
    CountingSink.count = count

    async def main() -> None:
        server = await asyncio.get_running_loop().create_server(CountingSink, "127.0.0.1", 0)
        port_out.send(server.sockets[0].getsockname()[1])
        await server.serve_forever()

    asyncio.run(main())


def start_sink() -> tuple[multiprocessing.Process, int, Synchronized[int]]:
    """The sink in its own process, so it does not share the sender's event loop or core."""
    count = multiprocessing.Value("q", 0)
    parent, child = multiprocessing.Pipe()
    process = multiprocessing.Process(target=_serve_sink, args=(child, count), daemon=True)
    process.start()
    return process, int(parent.recv()), count


def vocabulary() -> list[str]:
    """Keywords people would plausibly follow: words and word pairs from the sample papers."""
    words: list[str] = []
    for path in sorted((REPO / "examples").glob("*.json")):
        for record in json.loads(path.read_text(encoding="utf-8")):
            title = record.get("paper", record).get("title", "")
            tokens = [w.lower() for w in re.findall(r"[A-Za-z][A-Za-z-]{3,}", title)]
            words += tokens
            words += [f"{a} {b}" for a, b in itertools.pairwise(tokens)]
    return sorted(set(words))


def write_subscribers(path: Path, count: int, seed: int = 7) -> None:
    """A list of `count` subscribers with 1-4 random keywords each, written as a stream."""
    rnd = random.Random(seed)
    vocab = vocabulary()
    with path.open("w", encoding="utf-8") as handle:
        handle.write("email,name,keywords,status,subscribed_at,unsubscribed_at\n")
        for i in range(count):
            keywords = "; ".join(rnd.sample(vocab, rnd.randint(1, 4)))
            handle.write(f"reader{i}@example.com,Reader {i},{keywords},active,2026-10-01T00:00:00+00:00,\n")


# What a real lab's digest carries beyond the basics: a postal address, VERP (a bounce address),
# semantic ranking weighed in, and a plain loopback connection.
FEATURES = {
    "sender": 'postal_address = "Reading Group, 1 Example Street, Example City"\n'
    'bounce_address = "bounces@example.org"',
    "smtp": 'security = "none"',
    "selection": "[selection]\nsemantic_weight = 0.3",
}


def write_config(
    folder: Path, port: int, connections: int, processes: int | None = None, *, features: bool = False
) -> Path:
    """The benchmark's newsletter.toml; `features` adds FEATURES (bench_smtp_sink.py's send)."""
    path = folder / "newsletter.toml"
    builders = "" if processes is None else f"compose_processes = {processes}"
    extra = FEATURES if features else dict.fromkeys(FEATURES, "")
    path.write_text(
        f"""
title = "Bench Digest"
secret = "bench-secret-0123456789"
base_url = "https://papers.example.org"
issue_date = 2024-03-14
papers = ["{REPO / "examples"}"]
default_list = "bench"
subscribers_dir = "subscribers"
ledger = "newsletter.db"
[sender]
name = "Bench Digest"
address = "digest@example.org"
{extra["sender"]}
[smtp]
host = "127.0.0.1"
port = {port}
connections = {connections}
messages_per_connection = 1000000
{extra["smtp"]}
{builders}
{extra["selection"]}
""",
        encoding="utf-8",
    )
    return path


def prebuilt_messages(folder: Path, port: int, connections: int, n: int = 300) -> list[ComposedMessage]:
    """Messages composed by the real pipeline (dry run), so the ceiling sends the same sizes."""
    from newsletter.pipeline.issue import LinkSigner, prepare_issue
    from newsletter.pipeline.send import DigestPlanner, SendReport
    from newsletter.subscribers import open_list

    settings = load_settings(write_config(folder, port, connections))
    issue = prepare_issue(settings)
    report = SendReport(issue="x", list_name="bench", channel="smtp", server="sink")
    planner = DigestPlanner(settings, issue, LinkSigner.for_run(settings, False), SendOptions(), report)
    messages = []
    for job in planner.jobs(open_list(settings.places).iter_subscribers(), {}, {}):
        messages.append(job.message)
        if len(messages) == n:
            break
    return messages


async def _delivery_only(port: int, connections: int, messages: list[ComposedMessage], total: int) -> None:
    from newsletter.delivery.smtp import SmtpTarget, close_connection, open_connection, send_one

    remaining = iter(range(total))

    async def worker() -> None:
        client = await open_connection(SmtpTarget(host="127.0.0.1", port=port))
        for i in remaining:
            await send_one(client, "digest@example.org", messages[i % len(messages)])
        await close_connection(client)

    await asyncio.gather(*(worker() for _ in range(connections)))


def measure_delivery_only(port: int, connections: int, messages: list[ComposedMessage], total: int) -> float:
    started, cpu = time.perf_counter(), cpu_seconds()
    asyncio.run(_delivery_only(port, connections, messages, total))
    rate = total / (time.perf_counter() - started)
    print(f"  delivery only: sender CPU {1000 * (cpu_seconds() - cpu) / total:.2f} ms/msg", flush=True)
    return rate


async def _ceiling(port: int, connections: int, messages: list[tuple[str, bytes]], total: int) -> None:
    import aiosmtplib

    remaining = iter(range(total))

    async def worker() -> None:
        client = aiosmtplib.SMTP(hostname="127.0.0.1", port=port, start_tls=False)
        await client.connect()
        for i in remaining:
            recipient, data = messages[i % len(messages)]
            await client.sendmail("digest@example.org", [recipient], data)
        await client.quit()

    await asyncio.gather(*(worker() for _ in range(connections)))


def process_cpu_seconds(pid: int) -> float:
    """User + system CPU of another process (Linux /proc), to show the sink has room to spare."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return float("nan")
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def cpu_seconds(who: int = resource.RUSAGE_SELF) -> float:
    usage = resource.getrusage(who)
    return usage.ru_utime + usage.ru_stime


def measure_ceiling(
    port: int, sink: int, connections: int, messages: list[tuple[str, bytes]], total: int
) -> float:
    started, cpu, sink_cpu = time.perf_counter(), cpu_seconds(), process_cpu_seconds(sink)
    asyncio.run(_ceiling(port, connections, messages, total))
    rate = total / (time.perf_counter() - started)
    print(
        f"  ceiling: sender CPU {1000 * (cpu_seconds() - cpu) / total:.2f} ms/msg, "
        f"sink {1000 * (process_cpu_seconds(sink) - sink_cpu) / total:.2f} ms/msg",
        flush=True,
    )
    return rate


def measure_pipeline(
    folder: Path,
    port: int,
    sink: int,
    connections: int,
    total: int,
    *,
    processes: int | None,
) -> float:
    """One full run_send into a fresh ledger; msgs/s over the whole run (issue preparation included)."""
    # A fresh database each round, its -wal and -shm with it.
    for stale in folder.glob("newsletter.db*"):
        stale.unlink()
    forget_databases()  # the engine of the file just removed
    settings = load_settings(write_config(folder, port, connections, processes))
    started, cpu, children = time.perf_counter(), cpu_seconds(), cpu_seconds(resource.RUSAGE_CHILDREN)
    sink_cpu = process_cpu_seconds(sink)
    with RecordingCost() as recording:
        report = run_send(settings, SendOptions())
    elapsed = time.perf_counter() - started
    assert report.sent == total, report
    sender = 1000 * (cpu_seconds() - cpu) / total
    builders = 1000 * (cpu_seconds(resource.RUSAGE_CHILDREN) - children) / total
    sink_ms = 1000 * (process_cpu_seconds(sink) - sink_cpu) / total
    print(
        f"  end to end: sender CPU {sender:.2f} ms/msg, builder processes {builders:.2f} ms/msg, "
        f"sink {sink_ms:.2f} ms/msg",
        flush=True,
    )
    print(
        f"  recording (attempts + answers, writer thread): {1000 * recording.cpu / total:.3f} ms/msg CPU,"
        f" {1000 * recording.wall / total:.3f} ms/msg wall, {recording.calls} commits"
        f" ({total / max(recording.calls, 1):.1f} msg/commit)",
        flush=True,
    )
    return total / elapsed


def bench(subscribers: int, connections: int, rounds: int, processes: int | None) -> None:
    sink, port, count = start_sink()
    assert sink.pid is not None  # start_sink started it
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        (folder / "subscribers").mkdir()
        write_subscribers(folder / "subscribers" / "bench.csv", subscribers)
        composed = prebuilt_messages(folder, port, connections)
        messages = [(message.recipient, message.data) for message in composed]
        size = statistics.mean(len(data) for _, data in messages)
        builders = "auto" if processes is None else processes
        print(
            f"{subscribers} subscribers, {connections} connections, compose processes {builders}, "
            f"mean message {size / 1024:.1f} KiB"
        )
        ceilings, pipelines = [], []
        for round_no in range(1, rounds + 1):
            ceilings.append(measure_ceiling(port, sink.pid, connections, messages, subscribers))
            pipelines.append(
                measure_pipeline(folder, port, sink.pid, connections, subscribers, processes=processes)
            )
            print(
                f"round {round_no}: ceiling {ceilings[-1]:7.0f} msg/s   end to end {pipelines[-1]:7.0f} msg/s"
                f"   ratio {pipelines[-1] / ceilings[-1]:.2f}",
                flush=True,
            )
        delivery = measure_delivery_only(port, connections, composed, subscribers)
        print(
            f"for reference: delivery only {delivery:.0f} msg/s"
            " (pre-built messages, newsletter's sender, no ledger)"
        )
        print(f"sink counted {count.value} messages")
    sink.terminate()
    print(
        f"best: ceiling {max(ceilings):.0f} msg/s, end to end {max(pipelines):.0f} msg/s, "
        f"ratio of bests {max(pipelines) / max(ceilings):.2f}"
    )
    print(
        f"spread: ceiling {min(ceilings):.0f}-{max(ceilings):.0f},"
        f" end to end {min(pipelines):.0f}-{max(pipelines):.0f}"
    )


def _pss_kib(pid: int) -> int:
    """Proportional set size: pages shared with forked builders are split between them, not counted twice."""
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def _tree(pid: int) -> list[int]:
    """The process and its children (the builder processes)."""
    pids = [pid]
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            pids += [int(child) for child in (task / "children").read_text().split()]
        except OSError:
            continue
    return pids


def week_of_unsubscribes(path: Path, subscribers: int, code_path: Path) -> None:
    """1% of the list left during the week (one-click, in the database): the send writes it back."""
    code = (
        f"import sys; sys.path.insert(0, {str(code_path)!r})\n"
        "from pathlib import Path\n"
        "from newsletter.configfile import ListPlaces\n"
        "from newsletter.subscribers import open_list\n"
        f"store = open_list(ListPlaces(config_dir=Path({str(path.parent.parent)!r})), {path.stem!r})\n"
        f"for i in range(0, {subscribers}, 100):\n"
        "    store.unsubscribe(f'reader{i}@example.com')\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def memory(subscribers: int, connections: int, processes: int | None, code_path: Path = REPO) -> None:
    """Peak memory of a whole run, measured in a fresh process so nothing else inflates it.

    The list had a week's unsubscribes in the database, so the run writes them back into its
    CSV after it sends, as a real weekly run does.
    """
    sink, port, _count = start_sink()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        (folder / "subscribers").mkdir()
        write_subscribers(folder / "subscribers" / "bench.csv", subscribers)
        week_of_unsubscribes(folder / "subscribers" / "bench.csv", subscribers, code_path)
        config = write_config(folder, port, connections, processes)
        code = (
            f"import resource, sys, time; sys.path.insert(0, {str(code_path)!r})\n"
            "from newsletter.pipeline.send import SendOptions, run_send\n"
            "from newsletter.settings import load_settings\n"
            "t = time.perf_counter()\n"
            f"r = run_send(load_settings(__import__('pathlib').Path({str(config)!r})), SendOptions())\n"
            "usage = resource.getrusage\n"
            "print(r.sent, round(time.perf_counter() - t, 1), usage(resource.RUSAGE_SELF).ru_maxrss,"
            " usage(resource.RUSAGE_CHILDREN).ru_maxrss)\n"
        )
        run = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
        peak_pss = 0
        while run.poll() is None:  # sampled every 0.2 s: the whole tree, sender and builders together
            peak_pss = max(peak_pss, sum(_pss_kib(pid) for pid in _tree(run.pid)))
            time.sleep(0.2)
        out, _ = run.communicate()
        if run.returncode:
            raise SystemExit(f"the run failed with exit code {run.returncode}")
    sink.terminate()
    sent, seconds, rss_kib, child_kib = out.split()
    print(
        f"{subscribers} subscribers: {sent} sent in {seconds}s, peak RSS {int(rss_kib) / 1024:.0f} MiB"
        f" (sender process), largest builder process {int(child_kib) / 1024:.0f} MiB; "
        f"all processes together (PSS, sampled): {peak_pss / 1024:.0f} MiB"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--subscribers", type=int, default=20_000)
    parser.add_argument("--connections", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--compose-processes",
        type=int,
        default=None,
        help="smtp.compose_processes for the end-to-end run (default: auto)",
    )
    parser.add_argument(
        "--memory", type=int, metavar="N", help="measure peak RSS of one run with N subscribers"
    )
    parser.add_argument(
        "--code", type=Path, default=REPO, help="with --memory: the checkout whose `newsletter` to run"
    )
    args = parser.parse_args()
    if args.memory:
        memory(args.memory, args.connections, args.compose_processes, args.code.resolve())
    else:
        bench(args.subscribers, args.connections, args.rounds, args.compose_processes)


if __name__ == "__main__":
    main()
