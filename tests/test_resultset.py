"""Result sets that can be trusted: staged and swapped in whole, one writer at a time, checked
against their manifest, never written through a link, and whole after a kill at any moment."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from attribution.cli import cli
from attribution.resultset import (
    ResultSetBusyError,
    ResultSetError,
    locked,
    recover,
    swap_in,
    verify,
)

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / "fixtures" / "demo"
INPUTS = ["--touchpoints", str(DEMO / "touchpoints.csv"), "--deals", str(DEMO / "deals.csv"),
          "--contacts", str(DEMO / "contacts.csv")]


def _run(out: Path, *extra: str) -> object:
    return CliRunner().invoke(cli, ["-q", "run", *INPUTS, "--out", str(out), "--format", "json",
                                    *extra])


def _manifest(out: Path) -> list[dict]:
    return json.loads((out / "run.json").read_text("utf-8"))["manifest"]


def test_a_run_lists_every_file_in_its_manifest_and_verifies(tmp_path):
    out = tmp_path / "out"
    assert _run(out, "--model", "linear", "--model", "last_touch").exit_code == 0
    listed = _manifest(out)
    assert [e["file"] for e in listed] == sorted(p.name for p in out.iterdir()
                                                if p.name != "run.json")
    credit = next(e for e in listed if e["file"] == "credit.parquet")
    import polars as pl

    assert credit["rows"] == pl.read_parquet(out / "credit.parquet").height
    result = CliRunner().invoke(cli, ["verify", str(out)])
    assert result.exit_code == 0
    assert result.output.strip() == f"{out}: {len(listed)} files match the manifest of run.json"
    # nothing is left beside the folder but its lock
    assert sorted(p.name for p in tmp_path.iterdir()) == [".out.lock", "out"]


@pytest.mark.parametrize("damage, message", [
    ("edit", "summary.parquet: its SHA-256 differs from the manifest's"),
    ("extra", "notes.txt: not in the manifest of"),
    ("missing", "summary.parquet: listed in the manifest, missing"),
    ("rows", "comparison.csv: 3 rows, the manifest says"),
    ("record", "no run.json; not a result set, or one cut short"),
])
def test_verify_names_the_first_difference(tmp_path, damage, message):
    out = tmp_path / "out"
    assert _run(out, "--model", "linear", "--model", "last_touch").exit_code == 0
    if damage == "edit":
        (out / "summary.parquet").write_bytes((out / "summary.parquet").read_bytes() + b"x")
    elif damage == "extra":
        (out / "notes.txt").write_text("hello")
    elif damage == "missing":
        (out / "summary.parquet").unlink()
    elif damage == "rows":
        assert _run(out, "--model", "linear", "--model", "last_touch", "--out-format",
                    "csv").exit_code == 0
        lines = (out / "comparison.csv").read_text().splitlines()
        (out / "comparison.csv").write_text("\n".join(lines[:4]) + "\n")
    else:
        (out / "run.json").unlink()
    result = CliRunner().invoke(cli, ["verify", str(out)])
    assert result.exit_code == 2
    assert message in result.output
    assert len(result.output.strip().splitlines()) == 1


def test_a_later_run_leaves_no_file_of_an_earlier_one(tmp_path):
    out = tmp_path / "out"
    assert _run(out).exit_code == 0
    assert (out / "markov_removal_effects.parquet").exists() and (out / "rejects.csv").exists()
    assert _run(out, "--model", "linear").exit_code == 0
    assert sorted(p.name for p in out.iterdir()) == ["credit.parquet", "rejects.csv",
                                                      "run.json", "summary.parquet"]
    assert verify(out)


@pytest.mark.parametrize("make, message", [
    ("symlink", "is a symbolic link; give the folder itself"),
    ("file", "is a file, not a folder"),
    ("foreign", "holds thesis.docx, which is not a result set of attribution (no run.json); "
                "a run replaces the whole folder, so give an empty or new one"),
])
def test_a_destination_a_result_set_cannot_go_to_is_refused_before_any_work(
        tmp_path, make, message):
    out = tmp_path / "out"
    if make == "symlink":
        (tmp_path / "elsewhere").mkdir()
        out.symlink_to(tmp_path / "elsewhere")
    elif make == "file":
        out.write_text("a file")
    else:
        out.mkdir()
        (out / "thesis.docx").write_text("precious")
    result = CliRunner().invoke(cli, ["run", "--touchpoints", "no-such-file.csv",
                                      "--deals", "nor-this.csv", "--out", str(out)])
    # refused on the destination, not on the (missing) inputs: no work was done
    assert result.exit_code == 2
    assert message in result.output
    if make == "foreign":
        assert (out / "thesis.docx").read_text() == "precious"


def test_unwritable_parent_is_refused(tmp_path):
    if os.geteuid() == 0:
        pytest.skip("root writes anywhere")
    parent = tmp_path / "locked"
    parent.mkdir(mode=0o500)
    result = _run(parent / "out")
    assert result.exit_code == 2 and "cannot be written" in result.output


def test_one_writer_at_a_time(tmp_path):
    out = tmp_path / "out"
    with locked(out):
        result = _run(out, "--model", "linear")
        assert result.exit_code == 2
        assert "another run (pid " in result.output
        assert "is writing this result folder; wait for it, or pass --wait" in result.output
        with pytest.raises(ResultSetBusyError):
            with locked(out):
                pass
    assert not out.exists()
    assert _run(out, "--model", "linear").exit_code == 0


def test_leftovers_of_killed_runs_are_cleared_and_a_set_left_aside_comes_back(tmp_path):
    out = tmp_path / "out"
    assert _run(out, "--model", "linear").exit_code == 0
    before = _manifest(out)
    # a swap killed between its two renames: the old set aside, no --out
    aside = tmp_path / ".out.previous-dead"
    os.rename(out, aside)
    (tmp_path / ".out.staging-123-dead").mkdir()
    (tmp_path / ".out.staging-123-dead" / "credit.parquet").write_bytes(b"partial")
    with locked(out):
        removed = recover(out)
    assert [p.name for p in removed] == [".out.staging-123-dead"]
    assert _manifest(out) == before and verify(out)
    assert sorted(p.name for p in tmp_path.iterdir()) == [".out.lock", "out"]


def test_swap_in_replaces_a_folder_whole(tmp_path):
    out, staging = tmp_path / "out", tmp_path / ".out.staging-1"
    out.mkdir()
    (out / "old.txt").write_text("old")
    staging.mkdir()
    (staging / "new.txt").write_text("new")
    swap_in(staging, out)
    assert [p.name for p in out.iterdir()] == ["new.txt"]
    assert not staging.exists()


def test_a_result_folder_holding_a_link_is_refused_by_verify(tmp_path):
    out = tmp_path / "out"
    assert _run(out, "--model", "linear").exit_code == 0
    (tmp_path / "target.txt").write_text("x")
    (out / "summary.parquet").unlink()
    (out / "summary.parquet").symlink_to(tmp_path / "target.txt")
    with pytest.raises(ResultSetError, match="summary.parquet: listed in the manifest, missing"):
        verify(out)
    # and a run replaces the folder, never writing through the link
    assert _run(out, "--model", "linear").exit_code == 0
    assert (tmp_path / "target.txt").read_text() == "x"
    assert not (out / "summary.parquet").is_symlink()


def _cli(*arguments: str) -> list[str]:
    return [sys.executable, str(ROOT / "cli.py"), *arguments]


@pytest.fixture(scope="module")
def medium_export(tmp_path_factory):
    folder = tmp_path_factory.mktemp("medium")
    subprocess.run(_cli("-q", "simulate", "--accounts", "30000", "--format", "parquet",
                        "--out", str(folder)), check=True)
    return ["--touchpoints", str(folder / "touchpoints.parquet"),
            "--deals", str(folder / "deals.parquet"),
            "--contacts", str(folder / "contacts.parquet")]


def test_ctrl_c_exits_130_with_one_line_and_keeps_the_previous_set(tmp_path, medium_export):
    out = tmp_path / "out"
    assert _run(out, "--model", "linear").exit_code == 0
    before = _manifest(out)
    process = subprocess.Popen(_cli("-q", "run", *medium_export, "--out", str(out),
                                    "--out-format", "csv"),
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    # the staging folder appears when the run starts writing its set: past the imports and
    # the checks, with the whole load and every model still to come
    deadline = time.monotonic() + 60
    while not list(tmp_path.glob(".out.staging-*")) and time.monotonic() < deadline:
        time.sleep(0.02)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=60)
    if process.returncode == 0:  # the run was quicker than the signal
        pytest.skip("the run ended before Ctrl-C")
    assert process.returncode == 130
    assert stderr.strip().splitlines() == [
        "Error: interrupted (Ctrl-C); earlier results are kept as they were"]
    assert _manifest(out) == before and verify(out)
    assert sorted(p.name for p in tmp_path.iterdir()) == [".out.lock", "out"]


# a native call that neither returns to the interpreter nor looks at signals for seconds (it
# releases the GIL, as polars and numpy do for their long work) inside a staged result set
_LONG_NATIVE_CALL = """
import hashlib, sys
from pathlib import Path
from attribution.interrupts import watch as watch_interrupts
from attribution.resultset import staged
if sys.argv[2] == "watch":
    watch_interrupts()
with staged(Path(sys.argv[1])) as staging:
    (staging.directory / "credit.csv").write_text("half")
    print("ready", flush=True)
    hashlib.pbkdf2_hmac("sha256", b"p", b"s", 10**9)
"""


def _interrupt_long_call(out: Path, mode: str) -> tuple[subprocess.Popen, float]:
    process = subprocess.Popen([sys.executable, "-c", _LONG_NATIVE_CALL, str(out), mode],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               cwd=ROOT)
    assert process.stdout is not None and process.stdout.readline() == "ready\n"
    time.sleep(0.2)
    sent = time.monotonic()
    process.send_signal(signal.SIGINT)
    return process, sent


def test_ctrl_c_inside_a_long_native_call_stops_the_process_within_a_second(tmp_path):
    out = tmp_path / "out"
    assert _run(out, "--model", "linear").exit_code == 0
    before = _manifest(out)
    # without the watchdog the signal waits for the call to return: still running a second on
    control, _ = _interrupt_long_call(out, "plain")
    try:
        with pytest.raises(subprocess.TimeoutExpired):
            control.wait(timeout=1.5)
    finally:
        control.kill()
        control.communicate()
    process, sent = _interrupt_long_call(out, "watch")
    _, stderr = process.communicate(timeout=30)
    assert time.monotonic() - sent < 1.0
    assert process.returncode == 130
    assert stderr.splitlines() == [
        "Error: interrupted (Ctrl-C); earlier results are kept as they were"]
    assert _manifest(out) == before and verify(out)
    # its staging folder is gone (and the killed control's, which it removed on starting)
    assert sorted(p.name for p in tmp_path.iterdir()) == [".out.lock", "out"]


def test_ctrl_c_while_the_libraries_load_is_the_same_one_line(tmp_path):
    out = tmp_path / "out"
    process = subprocess.Popen(_cli("-q", "run", *INPUTS, "--out", str(out)),
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(0.25)  # polars and the rest take longer than this to import
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=30)
    assert process.returncode == 130, stderr
    assert stderr.splitlines() == [
        "Error: interrupted (Ctrl-C); earlier results are kept as they were"]
    assert not out.exists()


def test_importing_the_package_loads_no_table_library():
    # what lets the console entry point watch for Ctrl-C before the heavy imports
    code = "import sys, attribution; print('polars' in sys.modules, attribution.run.__module__)"
    shown = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                           cwd=ROOT, check=True).stdout
    assert shown.split() == ["False", "attribution.pipeline"]


@pytest.mark.slow
def test_ctrl_c_at_random_moments_of_a_run_stops_it_within_a_second(tmp_path, medium_export):
    out = tmp_path / "out"
    assert _run(out, "--model", "linear").exit_code == 0
    before = _manifest(out)
    start = time.monotonic()
    whole = subprocess.run(_cli("-q", "run", *medium_export, "--out", str(tmp_path / "new")),
                           capture_output=True, text=True)
    duration = time.monotonic() - start
    assert whole.returncode == 0, whole.stderr
    rng = random.Random(11)
    for attempt in range(5):
        process = subprocess.Popen(_cli("-q", "run", *medium_export, "--out", str(out)),
                                   stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        time.sleep(rng.uniform(0.5, duration * 0.9))
        sent = time.monotonic()
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=60)
        waited = time.monotonic() - sent
        if process.returncode == 0:  # it finished before the signal
            continue
        assert process.returncode == 130, (attempt, stderr)
        assert waited < 1.0, (attempt, waited)
        assert stderr.splitlines() == [
            "Error: interrupted (Ctrl-C); earlier results are kept as they were"], attempt
        assert _manifest(out) == before and verify(out), attempt
        assert not list(tmp_path.glob(".out.staging-*")), attempt


@pytest.fixture(scope="module")
def big_export(tmp_path_factory):
    folder = tmp_path_factory.mktemp("big")
    subprocess.run(_cli("-q", "simulate", "--accounts", "300000", "--format", "parquet",
                        "--out", str(folder)), check=True)
    return folder


@pytest.mark.slow
def test_a_run_killed_at_any_moment_leaves_the_old_or_the_new_set(big_export, tmp_path):
    inputs = ["--touchpoints", str(big_export / "touchpoints.parquet"),
              "--deals", str(big_export / "deals.parquet"),
              "--contacts", str(big_export / "contacts.parquet")]
    out = tmp_path / "out"
    old = subprocess.run(_cli("-q", "run", *inputs, "--out", str(out), "--model", "linear"),
                         capture_output=True, text=True)
    assert old.returncode == 0, old.stderr
    old_set = _manifest(out)
    import polars as pl

    assert pl.scan_parquet(big_export / "touchpoints.parquet").select(pl.len()).collect().item() \
        > 2_000_000
    start = time.monotonic()
    new = subprocess.run(_cli("-q", "run", *inputs, "--out", str(out / ".." / "new")),
                         capture_output=True, text=True)
    duration = time.monotonic() - start
    assert new.returncode == 0, new.stderr
    new_set = _manifest(tmp_path / "new")
    rng = random.Random(7)
    for attempt in range(6):
        process = subprocess.Popen(_cli("-q", "run", *inputs, "--out", str(out)),
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(rng.uniform(0.2, duration * 1.1))
        process.kill()
        process.wait()
        # the next run (or anyone) finds one complete set: recover, then verify
        with locked(out):
            recover(out)
        assert verify(out), attempt
        assert _manifest(out) in (old_set, new_set), attempt


@pytest.mark.slow
def test_two_runs_into_one_folder_one_lands_the_other_stops(big_export, tmp_path):
    inputs = ["--touchpoints", str(big_export / "touchpoints.parquet"),
              "--deals", str(big_export / "deals.parquet"),
              "--contacts", str(big_export / "contacts.parquet"), "--model", "linear"]
    out = tmp_path / "out"
    first = subprocess.Popen(_cli("-q", "run", *inputs, "--out", str(out)),
                             stderr=subprocess.PIPE, text=True)
    time.sleep(1.0)
    second = subprocess.run(_cli("-q", "run", *inputs, "--out", str(out)),
                            capture_output=True, text=True)
    first.communicate(timeout=600)
    assert first.returncode == 0
    assert second.returncode == 2
    assert "another run (pid" in second.stderr
    assert verify(out)
    waited = subprocess.run(_cli("-q", "run", *inputs, "--out", str(out), "--wait"),
                            capture_output=True, text=True)
    assert waited.returncode == 0 and verify(out)


def test_a_folder_an_older_version_wrote_is_a_result_set(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    for name in ("rejects.csv", "credit.csv", "markov_transitions.parquet"):
        (out / name).write_text("x")
    (out / ".credit.parts.abc").mkdir()
    assert _run(out, "--model", "linear").exit_code == 0
    assert verify(out)
    assert "markov_transitions.parquet" not in {p.name for p in out.iterdir()}


def test_a_config_that_writes_outside_its_folder_is_named_even_under_quiet(tmp_path):
    config = tmp_path / "project" / "attribution.toml"
    config.parent.mkdir()
    config.write_text(
        "[inputs]\n"
        f'touchpoints = "{DEMO / "touchpoints.csv"}"\n'
        f'deals = "{DEMO / "deals.csv"}"\n'
        f'contacts = "{DEMO / "contacts.csv"}"\n'
        "[models]\nrun = [\"linear\"]\n"
        "[output]\ndir = \"../elsewhere\"\n")
    result = CliRunner().invoke(cli, ["-q", "run", "--config", str(config), "--format", "json"])
    assert result.exit_code == 0, result.output
    assert result.stderr.splitlines()[0] == (
        f"note: {config} writes its results outside its folder, to {tmp_path / 'elsewhere'}")
    inside = CliRunner().invoke(cli, ["-q", "run", "--config", str(config), "--format", "json",
                                      "--out", str(tmp_path / "project" / "out")])
    assert inside.exit_code == 0 and inside.stderr == ""


def test_a_full_disk_names_the_destination_and_keeps_the_previous_set(tmp_path):
    disk = tmp_path / "small"
    disk.mkdir()
    # room for a one-model Parquet set (about 64 kB), not for every model's CSV (about 4 MB)
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(disk)],
                             capture_output=True)
    if mounted.returncode != 0:
        pytest.skip("mounting a small tmpfs needs root")
    try:
        out = disk / "out"
        assert _run(out, "--model", "linear").exit_code == 0
        before = _manifest(out)
        result = _run(out, "--out-format", "csv")
        assert result.exit_code == 2, result.output
        assert result.stderr.strip().splitlines()[-1] == (
            f"Error: --out {out}: no space left on device while writing the result set beside "
            f"it ({disk}); the folder keeps its previous set")
        assert _manifest(out) == before and verify(out)
        assert sorted(p.name for p in disk.iterdir()) == [".out.lock", "out"]
    finally:
        subprocess.run(["umount", str(disk)], check=False)
