from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from streamproc.cli.main import main
from streamproc.testing.access_traces import TraceConfig, generate, write_jsonl

CFG = TraceConfig(seed=21, n_principals=16, days=9, history_days=6, incidents_per_kind=1)


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("detector")
    base, lab = d / "baseline.jsonl", d / "labelled.jsonl"
    write_jsonl(generate(replace(CFG, seed=22, incidents_per_kind=0)), base)
    write_jsonl(generate(CFG), lab)
    model = d / "model.skops"
    rc = main(
        [
            "detector",
            "train",
            "--events",
            str(base),
            "--model",
            str(model),
            "--target-fpr",
            "0.02",
            "--trees",
            "30",
            "--warmup-days",
            "2",
        ]
    )
    assert rc == 0 and model.is_file()
    return {"baseline": base, "labelled": lab, "model": model, "dir": d}


def test_score_writes_one_line_per_event_in_input_order(files: dict[str, Path]) -> None:
    out, cont = files["dir"] / "scores.jsonl", files["dir"] / "containments.jsonl"
    rc = main(
        [
            "detector",
            "score",
            "--model",
            str(files["model"]),
            "--events",
            str(files["labelled"]),
            "--out",
            str(out),
            "--containments",
            str(cont),
        ]
    )
    assert rc == 0
    inp = [json.loads(x) for x in files["labelled"].read_text().splitlines()]
    got = [json.loads(x) for x in out.read_text().splitlines()]
    assert [g["event_id"] for g in got] == [e["event_id"] for e in inp]
    assert set(got[0]) == {"event_id", "score", "anomalous", "reasons"}
    flagged = [g for g in got if g["anomalous"]]
    assert flagged and all(g["reasons"] for g in flagged)
    assert all(g["score"] > 0 for g in got)
    # incidents score higher than normal traffic on average
    lab = {e["event_id"]: e["label"] for e in inp}
    inc = [g["score"] for g in got if lab[g["event_id"]]]
    nor = [g["score"] for g in got if not lab[g["event_id"]]]
    assert sum(inc) / len(inc) > sum(nor) / len(nor) + 0.05
    msgs = [json.loads(x) for x in cont.read_text().splitlines()]
    assert msgs and {"principal", "event_ids", "reasons", "action", "model_version"} <= set(msgs[0])


def test_evaluate_prints_metrics_and_writes_plot(
    files: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    png = files["dir"] / "roc.png"
    rc = main(
        [
            "detector",
            "evaluate",
            "--model",
            str(files["model"]),
            "--events",
            str(files["labelled"]),
            "--plot",
            str(png),
            "--json",
        ]
    )
    assert rc == 0
    rep = json.loads(capsys.readouterr().out)
    for key in ("roc_auc", "pr_auc", "incident_recall", "normal_flag_rate", "ttd_median_s"):
        assert key in rep
    assert rep["incidents"] == 5 and rep["roc_auc"] > 0.9
    assert png.read_bytes()[:4] == b"\x89PNG"


def test_missing_model_is_a_clean_error(
    files: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    rc = main(
        [
            "detector",
            "score",
            "--model",
            str(files["dir"] / "nope.skops"),
            "--events",
            str(files["labelled"]),
            "--out",
            str(files["dir"] / "x.jsonl"),
        ]
    )
    assert rc == 1
    assert "nope.skops does not exist" in capsys.readouterr().err


def test_train_takes_the_calibration_population(files: dict[str, Path]) -> None:
    from streamproc.detector.model import Detector

    out = files["dir"] / "pop.skops"
    args = ["detector", "train", "--events", str(files["baseline"]), "--model", str(out)]
    args += ["--target-fpr", "0.02", "--trees", "30", "--warmup-days", "2", "--population", "6"]
    assert main(args) == 0
    assert Detector.load(out).trained["calibration_population"] == 6
    default = Detector.load(files["model"])
    assert default.trained["calibration_population"] == 20
    assert default.trained["calibration_confidence"] == 0.7


def test_score_continues_from_history_as_if_scored_in_one_go(files: dict[str, Path]) -> None:
    lines = files["labelled"].read_text().splitlines()
    cut = len(lines) // 2
    hist, rest = files["dir"] / "hist.jsonl", files["dir"] / "rest.jsonl"
    hist.write_text("\n".join(lines[:cut]) + "\n")
    rest.write_text("\n".join(lines[cut:]) + "\n")
    whole, part = files["dir"] / "whole.jsonl", files["dir"] / "part.jsonl"
    base = ["detector", "score", "--model", str(files["model"])]
    assert main([*base, "--events", str(files["labelled"]), "--out", str(whole)]) == 0
    assert main([*base, "--events", str(rest), "--history", str(hist), "--out", str(part)]) == 0
    got = [json.loads(x)["score"] for x in part.read_text().splitlines()]
    want = [json.loads(x)["score"] for x in whole.read_text().splitlines()[cut:]]
    assert got == want
    # and without the history the same events score differently (the state matters)
    blind = files["dir"] / "blind.jsonl"
    assert main([*base, "--events", str(rest), "--out", str(blind)]) == 0
    assert [json.loads(x)["score"] for x in blind.read_text().splitlines()] != want


def test_train_continues_from_a_previous_model(files: dict[str, Path]) -> None:
    from streamproc.detector.model import Detector

    out = files["dir"] / "next.skops"
    args = ["detector", "train", "--events", str(files["baseline"]), "--model", str(out)]
    args += ["--target-fpr", "0.02", "--trees", "30", "--warmup-days", "2"]
    assert main([*args, "--previous", str(files["model"])]) == 0
    before, after = Detector.load(files["model"]).states, Detector.load(out).states
    assert set(after) == set(before)
    assert all(after[p].n == 2 * before[p].n for p in before)


def test_train_takes_declared_groups(files: dict[str, Path]) -> None:
    from streamproc.detector.model import Detector

    who = json.loads(files["baseline"].read_text().splitlines()[0])["principal"]
    groups = files["dir"] / "groups.yaml"
    groups.write_text(f"{who}: night-shift\n")
    out = files["dir"] / "groups.skops"
    args = ["detector", "train", "--events", str(files["baseline"]), "--model", str(out)]
    args += ["--target-fpr", "0.02", "--trees", "30", "--groups", str(groups)]
    assert main(args) == 0
    bl = Detector.load(out).baselines
    assert bl is not None and bl.declared == {who: "night-shift"} and "night-shift" in bl.groups
    groups.write_text("- not a mapping\n")
    assert main(args) == 1


def test_calibrate_writes_a_model_that_continues_after_the_history(
    files: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    from streamproc.detector.model import BUCKETS, STEP_NAMES, Detector

    lines = files["labelled"].read_text().splitlines()
    cut = len(lines) // 2
    hist, rest = files["dir"] / "c-hist.jsonl", files["dir"] / "c-rest.jsonl"
    hist.write_text("\n".join(lines[:cut]) + "\n")
    rest.write_text("\n".join(lines[cut:]) + "\n")
    cal = files["dir"] / "calibrated.skops"
    args = ["detector", "calibrate", "--model", str(files["model"]), "--events", str(hist)]
    assert main([*args, "--out", str(cal), "--aim", "0.5", "--burn-in-days", "1"]) == 0
    assert "calibrated on" in capsys.readouterr().out
    det = Detector.load(cal)
    assert [b for b, _ in det.evidence_thresholds if b in BUCKETS] == list(BUCKETS)
    assert {b for b, _ in det.evidence_thresholds} == {*BUCKETS, *STEP_NAMES}
    assert det.trained["recalibrated"]["aim"] == 0.5
    # scoring from the calibrated model continues from the history's state
    via_model, via_history = files["dir"] / "c1.jsonl", files["dir"] / "c2.jsonl"
    score = ["detector", "score", "--events", str(rest)]
    assert main([*score, "--model", str(cal), "--out", str(via_model)]) == 0
    hist_args = ["--model", str(files["model"]), "--history", str(hist)]
    assert main([*score, *hist_args, "--out", str(via_history)]) == 0
    a = [json.loads(x)["score"] for x in via_model.read_text().splitlines()]
    b = [json.loads(x)["score"] for x in via_history.read_text().splitlines()]
    assert a == b
    bad = ["--out", str(cal), "--aim", "1.5"]
    assert main([*args, *bad]) != 0


def test_calibrate_declares_the_deployments_roles(files: dict[str, Path]) -> None:
    from streamproc.detector.model import Detector

    lines = files["labelled"].read_text().splitlines()
    hist = files["dir"] / "g-hist.jsonl"
    hist.write_text("\n".join(lines[: len(lines) // 2]) + "\n")
    newcomer = "u9999.analyst.lisbon"
    groups = files["dir"] / "roles.yaml"
    groups.write_text(f"{newcomer}: analyst\n")
    cal = files["dir"] / "roles.skops"
    args = ["detector", "calibrate", "--model", str(files["model"]), "--events", str(hist)]
    assert main([*args, "--out", str(cal), "--groups", str(groups)]) == 0
    bl = Detector.load(cal).baselines
    before = Detector.load(files["model"]).baselines
    assert bl is not None and before is not None
    assert bl.declared == {**before.declared, newcomer: "analyst"}
    groups.write_text("- not a mapping\n")
    assert main([*args, "--out", str(cal), "--groups", str(groups)]) == 1
