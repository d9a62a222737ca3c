"""The timing-detection battery through the pipeline (tests/data/sweep-detection.yaml): a
guest running tdetect while its network peer and two other VMs are busy (the coordinator
holds it at most barriers, the host is loaded by the others), the same guest alone (mode
none), and under netem (plain TCG, real time). Every reading under tansiv equals the guest
alone's, bit for bit; under netem, detectors fire. The claims say so too."""

import json

import pytest

from helpers import REPO, table
from test_pipeline import DATA, snakemake


@pytest.fixture(scope="module")
def detection(tmp_path_factory):
    results = tmp_path_factory.mktemp("detection")
    r = snakemake("--cores", "2", "--configfile", DATA / "sweep-detection.yaml", "--config",
                  f"results={results}")
    assert r.returncode == 0, r.stderr[-5000:]
    return results


def readings(rows, mode):
    return {(r["label"], r["seq"]): float(r["value"]) for r in rows
            if r["mode"] == mode and r["metric"] == "reading"}


def test_every_reading_under_tansiv_is_the_guest_alones(detection):
    rows = table(detection, "detection")
    tansiv, alone = readings(rows, "tansiv"), readings(rows, "none")
    techniques = {label.split(".")[0] for label, _ in alone}
    # Alone, the guest has no peer: every technique but the network's.
    assert techniques >= {"rdtsc", "cpuid", "tsc_rate", "rtc", "acpi_pm", "sleep", "cpu_work",
                          "clock_gaps"}, techniques
    common = set(tansiv) & set(alone)
    assert common == set(alone) and len(common) > 150
    differ = {k: (tansiv[k], alone[k]) for k in common if tansiv[k] != alone[k]}
    assert not differ, list(differ.items())[:5]
    # ...while the coordinator held the battery's VM for seconds of wall time.
    (exp,) = [e for e in table(detection, "experiments") if e["mode"] == "tansiv"]
    record = json.loads((detection / "runs" / exp["id"] / "run" / "run.json").read_text())
    held = {p["name"]: p["held_s"] for p in record["participants"]}
    print(f"held (s): {held}")
    assert held["10.0.0.1"] > 1.0, held


def test_no_detector_fires_under_tansiv_and_two_do_under_netem(detection):
    fired = {}
    for r in table(detection, "detection"):
        if r["metric"] == "fired":
            fired.setdefault(r["mode"], []).append((r["label"], float(r["value"])))
    print(fired)
    assert fired["tansiv"] and not [t for t, v in fired["tansiv"] if v]
    assert fired["none"] and not [t for t, v in fired["none"] if v]
    # The network techniques ran under tansiv: they have a peer there.
    assert {"icmp_rtt", "udp_rtt", "tcp_timestamps"} <= {t for t, _ in fired["tansiv"]}
    assert len([t for t, v in fired["netem"] if v]) >= 2, fired["netem"]


def test_the_claims_and_the_figure_say_so(detection):
    claims = json.loads((detection / "claims.json").read_text())["claims"]
    mine = {c["claim"]: c for c in claims if c["figure"] == "detection"}
    assert len(mine) == 3 and all(c["verdict"] == "PASS" for c in mine.values()), mine
    drawn = json.loads((detection / "figures" / "detection.json").read_text())
    assert drawn["placeholders"] == 0 and drawn["points"] >= 3 * 14
