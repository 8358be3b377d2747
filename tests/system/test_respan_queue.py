#!/usr/bin/env python3
"""test_respan_queue.py - the respan exporter's durable sending queue keeps
every span the collector acknowledged, through a crash, a full queue and a
corrupted segment file, and cleans up after delivery.

The collector acknowledges an OTLP request only once its spans are in the
on-disk queue (core/queue.h), so these cases send while the stand-in Respan
API (tests/lib/respan_standin.py) is down or away, do something to the
collector or its queue directory, then let the stand-in accept and count
what arrives by span_unique_id:
  - SIGKILL mid-stream (durability fsync with the stand-in answering 503,
    async with it stopped, fsync while it delivers slowly; 4 client
    threads, 200 requests of 10 spans), restart on the same queue: every
    span of every request answered 200 arrives at least once; duplicates
    are reported and only bounded by what can be in flight (at-least-once
    allows them for in-flight batches);
  - a full queue (max_size_mib 1): 503 with Retry-After, the enqueue_failed
    counter grows, nothing acknowledged is lost, nothing refused arrives,
    and requests are accepted again once the queue drains;
  - garbage appended to the newest segment, and a segment cut mid-record:
    the restart logs the cut ("torn or corrupt"), does not crash, and
    delivers every record before it;
  - the oldest segment file deleted while the collector is down: the
    restart logs "N records lost: segment X is missing" with the exact
    number of records, counts them in respan_queue_lost_records and
    respan_queue_missing_segments, and delivers every other span;
  - delivered segments are deleted and the queue_size gauge returns to 0;
  - durability memory delivers (it loses its queue on a crash, as
    documented; that is not asserted).

Shared helpers (RespanCollector, Setup, spans, metrics) come from
test_respan_delivery.py. Python 3 standard library only.
"""

import os
import re
import struct
import sys
import threading
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from collector import Runner, kv_string, post_traces  # noqa: E402
from test_respan_delivery import (Setup, Span, arrived_ids, body_of,  # noqa: E402
                                  ids, llm_attrs, make_spans, send_ok, wait_all_arrived,
                                  wait_until)

REC_MAGIC = 0x32514352  # "RCQ2", little-endian, as core/queue.c writes it
REC_HDR = 16

CRASH_THREADS = 4
CRASH_REQUESTS = 200  # in all, spread over the threads
CRASH_SPANS = 10  # per request


# --- queue files -------------------------------------------------------------------

def segment_records(path):
    """[(offset, total size, payload)] of the whole records at the start of
    a segment file (core/queue.c's 16-byte header: magic, len, weight,
    crc; the CRC is not checked here)."""
    with open(path, "rb") as f:
        data = f.read()
    out = []
    off = 0
    while off + REC_HDR <= len(data):
        magic, length, _weight, _crc = struct.unpack_from("<IIII", data, off)
        if magic != REC_MAGIC or off + REC_HDR + length > len(data):
            break
        out.append((off, REC_HDR + length, data[off + REC_HDR:off + REC_HDR + length]))
        off += REC_HDR + length
    return out


def span_ids_in(payload):
    return set(re.findall(rb'"span_unique_id":"([0-9a-f]{16})"', payload))


def newest_segment(col):
    segs = col.seg_files()
    assert segs, "no .seg file in %s: %s" % (col.queue_dir, os.listdir(col.queue_dir))
    return os.path.join(col.queue_dir, sorted(segs)[-1])


# --- crash -------------------------------------------------------------------------

class Flood:
    """CRASH_THREADS client threads posting CRASH_REQUESTS requests of
    CRASH_SPANS spans in all, each request with fresh span ids; records
    which requests were answered 200. The thread whose answer makes
    kill_after acknowledged requests SIGKILLs the collector, while the
    others are in the middle of theirs; they stop at their next error."""

    def __init__(self, col, kill_after):
        self.col = col
        self.kill_after = kill_after
        self.lock = threading.Lock()
        self.acked = []  # span ids of requests answered 200
        self.refused = 0
        self.errors = 0
        self.stop = threading.Event()
        per = CRASH_REQUESTS // CRASH_THREADS
        self.threads = [threading.Thread(target=self.run, args=(per,), daemon=True)
                        for _ in range(CRASH_THREADS)]

    def start(self):
        for t in self.threads:
            t.start()
        return self

    def run(self, n):
        port = self.col.ports["http"]
        for _ in range(n):
            if self.stop.is_set():
                return
            spans = make_spans(CRASH_SPANS)
            try:
                status, _, _ = post_traces(port, body_of(spans), timeout=30)
            except OSError:
                with self.lock:
                    self.errors += 1
                if self.stop.is_set():
                    return
                continue
            with self.lock:
                if status == 200:
                    self.acked.append(ids(spans))
                else:
                    self.refused += 1
                kill = len(self.acked) == self.kill_after and not self.stop.is_set()
                if kill:
                    self.stop.set()
            if kill:
                # From this client thread, so the other three are mid-request.
                self.col.kill()
                return

    def n_acked(self):
        with self.lock:
            return len(self.acked)

    def join(self, timeout=60):
        for t in self.threads:
            t.join(timeout)
        assert not any(t.is_alive() for t in self.threads), "client threads hang"


def crash_and_recover(durability, outage):
    """outage: "mode" (the stand-in answers 503), "process" (the stand-in
    is stopped: connections are refused) or "slow" (the stand-in accepts,
    200 ms late: some batches are delivered and acknowledged in .ack files
    before the crash, some are in flight at it)."""
    mode = {"mode": "slow", "delay_ms": 200} if outage == "slow" else "down"
    with Setup("crash-" + durability, exporter={"sending_queue": {"durability": durability}},
               standin_mode=mode) as (std, col):
        if outage == "process":
            std.stop()
        flood = Flood(col, CRASH_REQUESTS // 2).start()
        flood.join()
        assert flood.stop.is_set(), "the flood ended before the kill"
        assert not col.alive(), "the collector was not killed"
        killed_at = flood.kill_after
        acked = set().union(*flood.acked)
        print("    killed after %d requests acknowledged (%d in all, %d refused, %d errors)"
              % (killed_at, len(flood.acked), flood.refused, flood.errors))
        assert len(flood.acked) < CRASH_REQUESTS, "the kill came after the last request"
        assert flood.refused == 0, "%d requests refused with an empty queue" % flood.refused
        if outage == "mode":
            assert std.summary()["n_logs"] == 0, "the stand-in accepted logs while down"
        col.start()
        wait_until(lambda: "recovered" in col.stderr(), 10,
                   "the restarted collector did not log recovering the queue")
        if outage == "process":
            std.start(port=std.port)
        else:
            std.set_mode("ok")
        counts = wait_all_arrived(std, acked, 60)
        dups = sum(1 for i in acked if counts[i] > 1)
        extra = len(set(counts) - acked)
        print("    %d acknowledged spans all arrived; %d duplicates; %d spans of unanswered "
              "requests arrived too" % (len(acked), dups, extra))
        # Only batches in flight at the kill may come again: at most one
        # batch of max_batch_logs per sender (num_consumers).
        bound = col.exporter["num_consumers"] * col.exporter["max_batch_logs"]
        assert dups <= bound, "%d spans arrived twice; in-flight batches hold at most %d" % (
            dups, bound)
        assert col.alive(), "the restarted collector died"


def case_crash_fsync():
    crash_and_recover("fsync", "mode")


def case_crash_async():
    crash_and_recover("async", "process")


def case_crash_while_delivering():
    crash_and_recover("fsync", "slow")


# --- queue full ------------------------------------------------------------------

PAD = "q" * 20000


def big_spans(n):
    return [Span(attributes=llm_attrs(extra=[kv_string("app.pad", PAD)])) for _ in range(n)]


def case_queue_full():
    exporter = {"sending_queue": {"max_size_mib": 1}, "max_batch_bytes_mib": 1}
    with Setup("full", exporter=exporter, standin_mode="down") as (std, col):
        before = col.metric("otelcol_exporter_enqueue_failed_spans") or 0
        acked, refused, answers = set(), set(), []
        for _ in range(200):
            spans = big_spans(5)
            status, headers, body = post_traces(col.ports["http"], body_of(spans))
            answers.append(status)
            if status == 200:
                acked |= ids(spans)
            elif status == 503:
                refused |= ids(spans)
                retry = headers.get("retry-after")
                assert retry and retry.isdigit() and int(retry) >= 1, (
                    "503 with Retry-After %r" % retry)
                break
            else:
                raise AssertionError("answer %d %r while filling the queue" % (status,
                                                                               body[:200]))
        print("    %d requests of 5 x 20 KB spans accepted before the 503" % (len(answers) - 1))
        assert answers[-1] == 503, "no 503 after %d requests into a 1 MiB queue" % len(answers)
        assert acked, "nothing was accepted before the queue was full"
        after = col.metric("otelcol_exporter_enqueue_failed_spans")
        assert after is not None and after >= before + 5, (
            "otelcol_exporter_enqueue_failed_spans %r -> %r after a refused request of 5 spans"
            % (before, after))
        size = col.metric("otelcol_exporter_queue_size")
        cap = col.metric("otelcol_exporter_queue_capacity")
        assert cap == 1 << 20, "queue_capacity %r, want 1 MiB" % cap
        assert size is not None and size > cap / 2, "queue_size %r of a full queue" % size
        std.set_mode("ok")
        counts = wait_all_arrived(std, acked, 60)
        assert max(counts[i] for i in acked) == 1, "spans arrived twice without a crash"
        leaked = refused & set(counts)
        assert not leaked, "%d spans of the refused request arrived anyway" % len(leaked)
        more = big_spans(5)
        send_ok(col, more)
        wait_all_arrived(std, ids(more), 20)


# --- corruption ------------------------------------------------------------------

def fill_then_stop(std, col, requests=6):
    """Sends while the stand-in is down, then stops the collector cleanly;
    the span ids sent."""
    spans = make_spans(requests * 10)
    for k in range(0, len(spans), 10):
        send_ok(col, spans[k:k + 10])
    std.wait_for(lambda s: s["statuses"].get("503", 0) >= 1, timeout=10)
    code = col.stop()
    assert code == 0, "exit status after SIGTERM: %r" % code
    return ids(spans)


def case_garbage_appended():
    with Setup("garbage", standin_mode="down") as (std, col):
        sent = fill_then_stop(std, col)
        seg = newest_segment(col)
        size = os.path.getsize(seg)
        with open(seg, "ab") as f:
            f.write(os.urandom(1024))
        col.start()
        wait_until(lambda: "torn or corrupt" in col.stderr(), 10,
                   "the restart does not mention the cut (torn or corrupt)")
        line = [x for x in col.stderr().splitlines() if "torn or corrupt" in x][-1]
        assert "cut 1024 bytes" in line and "offset %d" % size in line, (
            "the cut is not the 1024 garbage bytes at offset %d: %r" % (size, line))
        std.set_mode("ok")
        counts = wait_all_arrived(std, sent, 30)
        assert max(counts.values()) == 1, "spans arrived twice without a crash"
        assert col.alive(), "the collector died after recovering"


def case_torn_record():
    with Setup("torn", standin_mode="down") as (std, col):
        sent = fill_then_stop(std, col)
        seg = newest_segment(col)
        records = segment_records(seg)
        assert len(records) >= 2, "want several records in %s, found %d" % (seg, len(records))
        off, total, payload = records[-1]
        lost = {i.decode() for i in span_ids_in(payload)}
        before = set()
        for _, _, p in records[:-1]:
            before |= {i.decode() for i in span_ids_in(p)}
        assert lost and before and before | lost == sent, (
            "the segment's records do not hold exactly the spans sent")
        with open(seg, "r+b") as f:
            f.truncate(off + total // 2)  # a write torn mid-record
        col.start()
        wait_until(lambda: "torn or corrupt" in col.stderr(), 10,
                   "the restart does not mention the cut (torn or corrupt)")
        std.set_mode("ok")
        counts = wait_all_arrived(std, before, 30)
        time.sleep(0.5)
        counts = arrived_ids(std)
        assert not lost & set(counts), "spans of the torn record arrived"
        assert max(counts.values()) == 1, "spans arrived twice without a crash"
        print("    %d spans before the torn record arrived; %d were in it" % (len(before),
                                                                               len(lost)))
        assert col.alive(), "the collector died after recovering"


def queue_metric(col, name, queue="respan"):
    """The value of name{queue="respan"} on /metrics (None when absent)."""
    label = 'queue="%s"' % queue
    for line in col.metrics_text().splitlines():
        if line.startswith(name + "{") and label in line.split("}")[0]:
            return float(line.rsplit(None, 1)[1])
    return None


def case_missing_segment():
    # max_size_mib 2: segments of 512 KiB, five or so requests of 5 x 20 KB each.
    exporter = {"sending_queue": {"max_size_mib": 2}, "max_batch_bytes_mib": 1}
    with Setup("missing", exporter=exporter, standin_mode="down") as (std, col):
        sent = set()
        while len(col.seg_files()) < 3:
            spans = big_spans(5)
            send_ok(col, spans)
            sent |= ids(spans)
        std.wait_for(lambda s: s["statuses"].get("503", 0) >= 1, timeout=10)
        code = col.stop()
        assert code == 0, "exit status after SIGTERM: %r" % code
        name = sorted(col.seg_files())[0]
        oldest = os.path.join(col.queue_dir, name)
        records = segment_records(oldest)
        lost = set()
        for _, _, payload in records:
            lost |= {i.decode() for i in span_ids_in(payload)}
        assert records and lost and lost < sent, "the oldest segment holds no spans"
        os.unlink(oldest)
        col.start()
        want = "queue %s: %d records lost: segment %s is missing" % (col.queue_dir,
                                                                     len(records), name)
        wait_until(lambda: want in col.stderr(), 10,
                   "the restart does not log %r" % want)
        summary = "%d acknowledged records were lost (see above)" % len(records)
        assert summary in col.stderr(), "the recovery summary does not say %r" % summary
        lost_metric = queue_metric(col, "respan_queue_lost_records")
        assert lost_metric == len(records), (
            "respan_queue_lost_records %r, want %d" % (lost_metric, len(records)))
        missing = queue_metric(col, "respan_queue_missing_segments")
        assert missing == 1, "respan_queue_missing_segments %r, want 1" % missing
        std.set_mode("ok")
        counts = wait_all_arrived(std, sent - lost, 60)
        time.sleep(0.5)
        counts = arrived_ids(std)
        assert not lost & set(counts), "spans of the deleted segment arrived"
        assert max(counts.values()) == 1, "spans arrived twice without a crash"
        print("    %d records (%d spans) went with %s; the other %d spans arrived"
              % (len(records), len(lost), name, len(sent - lost)))


# --- clean-up after delivery ----------------------------------------------------------

def case_segments_deleted():
    # max_size_mib 2: segments of 512 KiB (a quarter of the queue, core/queue.c).
    exporter = {"sending_queue": {"max_size_mib": 2}, "max_batch_bytes_mib": 1}
    with Setup("segments", exporter=exporter, standin_mode="down") as (std, col):
        sent = set()
        while sum(col.seg_files().values()) < 1200 * 1024:
            spans = big_spans(5)
            send_ok(col, spans)
            sent |= ids(spans)
        segs = col.seg_files()
        assert len(segs) >= 3, "want 3 or more segments, found %s" % segs
        std.set_mode("ok")
        wait_all_arrived(std, sent, 60)
        wait_until(lambda: col.metric("otelcol_exporter_queue_size") == 0, 10,
                   "otelcol_exporter_queue_size is %r after delivery, want 0"
                   % col.metric("otelcol_exporter_queue_size"))
        left = col.seg_files()
        assert len(left) <= 1 and all(size == 0 for size in left.values()), (
            "segments left after delivery (%d before): %s" % (len(segs), left))
        acks = [n for n in os.listdir(col.queue_dir) if n.endswith(".ack")]
        assert all(os.path.getsize(os.path.join(col.queue_dir, n)) == 0 for n in acks), (
            "non-empty .ack files left: %s" % acks)
        print("    %d segments while down, %s after delivery" % (len(segs), left))


def case_memory_durability():
    """durability: memory trades safety for speed: its queue is lost with
    the process (docs/configuration.md); here it only has to deliver."""
    with Setup("memory", exporter={"sending_queue": {"durability": "memory"}},
               standin_mode={"mode": "down", "times": 3}) as (std, col):
        spans = make_spans(50)
        for k in range(0, 50, 10):
            send_ok(col, spans[k:k + 10])
        counts = wait_all_arrived(std, ids(spans), 20)
        assert max(counts.values()) == 1, "spans arrived twice"
        assert not col.seg_files(), "durability memory wrote segments: %s" % col.seg_files()


def main():
    r = Runner()
    r.case("SIGKILL mid-stream, fsync: every acknowledged span arrives", case_crash_fsync)
    r.case("SIGKILL mid-stream, async, stand-in away: every acknowledged span arrives",
           case_crash_async)
    r.case("SIGKILL while delivering (slow stand-in): acknowledged arrive, few duplicates",
           case_crash_while_delivering)
    r.case("full queue: 503 + Retry-After, nothing acknowledged lost, accepted again",
           case_queue_full)
    r.case("garbage appended to a segment: cut, logged, the rest delivered",
           case_garbage_appended)
    r.case("a record torn mid-write: cut, the records before it delivered", case_torn_record)
    r.case("the oldest segment deleted while down: its records counted as lost, "
           "the rest delivered", case_missing_segment)
    r.case("delivered segments are deleted, queue_size back to 0", case_segments_deleted)
    r.case("durability memory delivers", case_memory_durability)
    r.finish()


if __name__ == "__main__":
    main()
