"""Claims checked against tables (tansiv/experiments/claims.py): each kind passes on rows
that hold it, fails on rows that break it (saying where), and says "not measured" without
rows; the outputs say every verdict. The pipeline's own claims, on a real sweep, are
tests/test_pipeline.py's."""

import json

import pandas as pd
import pytest

from tansiv.experiments import claims, reruns, workloads


def table(rows):
    base = {"id": "e1", "sweep": "s", "mode": "tansiv", "status": "ok", "label": None,
            "seq": None}
    return pd.DataFrame([{**base, **r} for r in rows])


RTT = claims.bound("excess at most 50 us", "rtt", "rtt_excess_ns", at_most=50, scale=1e-3,
                   unit=" µs", where={"mode": "tansiv"})


def test_a_bound_passes_fails_and_says_where():
    good = table([{"metric": "rtt_excess_ns", "value": v} for v in (40_000, 41_000)])
    assert RTT.check({"rtt": good})["verdict"] == claims.PASS
    bad = table([{"metric": "rtt_excess_ns", "value": 40_000},
                 {"metric": "rtt_excess_ns", "value": 90_000, "id": "e2"}])
    got = RTT.check({"rtt": bad})
    assert got["verdict"] == claims.FAIL and got["measured"] == "90 µs", got
    # Rows of another mode, or of a failed experiment, do not count.
    other = table([{"metric": "rtt_excess_ns", "value": 9e9, "mode": "netem"},
                   {"metric": "rtt_excess_ns", "value": 9e9, "status": "failed"}])
    assert RTT.check({"rtt": other})["verdict"] == claims.UNMEASURED
    assert RTT.check({})["verdict"] == claims.UNMEASURED


def test_a_spread_is_taken_per_group_and_the_worst_decides():
    c = claims.bound("constant", "rtt", "rtt_excess_ns", stat="spread", at_most=5, scale=1e-3,
                     by=("network",))
    rows = table([{"metric": "rtt_excess_ns", "value": v, "network": n}
                  for v, n in ((40_000, "a"), (44_000, "a"), (10_000, "b"), (17_000, "b"))])
    got = c.check({"rtt": rows})
    assert got["verdict"] == claims.FAIL and "network=b" in got["detail"], got


def test_a_relative_claim_matches_labels_and_unlabelled_references():
    c = claims.relative("p50 within 5 %", "etcd", "p50", "expected", tolerance=0.05,
                        where={"label": "c1"})
    rows = table([{"metric": "p50", "value": 41.0, "label": "c1"},
                  {"metric": "expected", "value": 40.0}])
    assert c.check({"etcd": rows})["verdict"] == claims.PASS
    rows.loc[0, "value"] = 45.0
    got = c.check({"etcd": rows})
    assert got["verdict"] == claims.FAIL and got["measured"] == "12.50 % off", got


def test_same_as_compares_every_reading_bit_for_bit():
    c = claims.same_as("tansiv = alone", "probe", mode="tansiv", reference="none")
    rows = [{"metric": "gap", "value": 1250, "label": "tsc", "mode": m} for m in ("tansiv", "none")]
    assert c.check({"probe": table(rows)})["verdict"] == claims.PASS
    rows[0]["value"] = 1251
    got = c.check({"probe": table(rows)})
    assert got["verdict"] == claims.FAIL and got["measured"] == "1 of 1 readings differ"
    assert "label=tsc" in got["detail"], got


def test_outputs_say_every_verdict(tmp_path):
    rows = claims.evaluate({}, (RTT,), {"rtt": table([{"metric": "rtt_excess_ns",
                                                        "value": 80_000}])})
    claims.write(rows, tmp_path / "c.md", tmp_path / "c.json", tmp_path / "c.rst")
    md = (tmp_path / "c.md").read_text()
    assert md.startswith("# Claims: 0 pass, 1 fail, 0 not measured")
    assert "| excess at most 50 us | 80 µs | ≤ 50 µs | **FAIL** |" in md
    js = json.loads((tmp_path / "c.json").read_text())
    assert js["counts"] == {"PASS": 0, "FAIL": 1, "not measured": 0}
    assert "FAIL" in (tmp_path / "c.rst").read_text()


def test_a_configured_claim_is_a_claim():
    c = claims.from_config({"claim": "put within 5 %", "metric": "p50", "relative_to": "exp",
                            "tolerance": 0.05}, "etcd")
    assert c.tolerance == "≤ 5 %"
    with pytest.raises(ValueError, match="at_most or at_least"):
        claims.bound("neither", "t", "m")


def test_a_configured_close_to_claim_and_a_range_in_where():
    c = claims.from_config({"claim": "put within 2 ms at 10 ms and more", "metric": "p50",
                            "close_to": "expected", "within": 2, "unit": " ms",
                            "where": {"latency_ns": {"min": 10_000_000}}}, "etcd")
    rows = table([{"metric": "p50", "value": 21.2, "latency_ns": 10_000_000},
                  {"metric": "expected", "value": 20.0, "latency_ns": 10_000_000},
                  {"metric": "p50", "value": 19.0, "latency_ns": 5_000_000, "id": "e2"},
                  {"metric": "expected", "value": 10.0, "latency_ns": 5_000_000, "id": "e2"}])
    got = c.check({"etcd": rows})  # e2, 9 ms off, is below the range
    assert got["verdict"] == claims.PASS and got["measured"] == "1.2 ms apart", got
    rows.loc[2, "latency_ns"] = rows.loc[3, "latency_ns"] = 20_000_000
    got = c.check({"etcd": rows})
    assert got["verdict"] == claims.FAIL and "e2" in got["detail"], got


def test_every_claim_names_a_table_of_the_registry():
    known = set(workloads.tables()) | {"rerun"}
    every = [c for fig in workloads.figures().values() for c in fig.claims] + list(claims.GENERAL)
    assert len(every) >= 14
    for c in every:
        assert c.table in known, (c.text, c.table)
        # Without its table, it says so: no crash, no verdict.
        assert c.check({})["verdict"] == claims.UNMEASURED, c.text


def test_a_rerun_compares_outputs_and_packets_byte_for_byte(tmp_path):
    for run in ("a", "b"):
        (tmp_path / run / "participants").mkdir(parents=True)
        (tmp_path / run / "participants" / "10.0.0.1.log").write_text("hello\n")
        (tmp_path / run / "packets.jsonl").write_text('{"t": 1}\n')
    same = reruns.compare(tmp_path / "a", tmp_path / "b")
    assert [r["value"] for r in same] == [1, 1]
    (tmp_path / "b" / "packets.jsonl").write_text('{"t": 2}\n')
    differ = {r["label"]: r["value"] for r in reruns.compare(tmp_path / "a", tmp_path / "b")}
    assert differ == {"output of 10.0.0.1": 1, "packets.jsonl": 0}


def test_close_to_is_a_difference_and_p95_a_tail():
    c = claims.close_to("median within 5 ms of base", "bb", "rtt_ns", "model_rtt_ns", within=5,
                        scale=1e-6, unit=" ms")
    rows = table([{"metric": "rtt_ns", "value": v * 1e6} for v in (9, 11, 40)] +
                 [{"metric": "model_rtt_ns", "value": 8e6}])
    got = c.check({"bb": rows})
    assert got["verdict"] == claims.PASS and got["measured"] == "3 ms apart", got
    tail = claims.relative("p95 is the full queue", "bb", "rtt_ns", "model_rtt_ns",
                           tolerance=0.05, stat="p95")
    assert tail.check({"bb": rows})["verdict"] == claims.FAIL  # ~37 ms against 8
