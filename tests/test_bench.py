"""``augpipe bench`` end to end on a tiny packed dataset: the JSON keys, the CLI, user errors."""

from __future__ import annotations

import json
import sys

import pytest

from augpipe.bench.run import figures_from, run_bench
from augpipe.bench.stages import BenchConfig, drop_page_cache, timed_rates
from augpipe.bench.verdict import BOTTLENECKS, decide
from augpipe.cli.main import main

FAST = ["--model", "small_cnn", "--res", "16", "--batch-size", "8", "--seconds", "0.05",
        "--quiet"]  # fmt: skip


@pytest.fixture(scope="module")
def results(tiny_packed):
    cfg = BenchConfig(model="small_cnn", res=16, batch_size=8, workers=(0, 1), seconds=0.05)
    return run_bench(tiny_packed, cfg)


def test_results_hold_every_stage_and_the_verdict(results):
    assert set(results) >= {"dataset", "config", "stages", "end_to_end", "verdict", "bottleneck",
                            "machine", "seconds_total"}  # fmt: skip
    st = results["stages"]
    assert set(st) == {"disk", "decode", "decode_augment", "loader", "transfer", "model"}
    assert set(st["disk"]) == {"cold", "warm", "bytes", "fits_in_cache"}
    assert st["disk"]["cold"]["images_per_s"] > 0 and st["disk"]["warm"]["median"] > 0
    for key in ("decode", "decode_augment", "model"):
        assert {"median", "min", "max", "rates"} <= set(st[key])
        assert st[key]["min"] <= st[key]["median"] <= st[key]["max"]
    assert set(st["loader"]) == {"0", "1"}
    assert st["transfer"] is None  # CPU run: no host->device stage
    e2e = results["end_to_end"]
    assert 0.0 <= e2e["data_wait_fraction"] <= 1.0 and e2e["images_per_s"] > 0
    assert results["bottleneck"] in BOTTLENECKS
    assert results["bottleneck"] == results["verdict"]["bottleneck"]
    assert {"cores", "cpu_model", "python", "numpy", "numba", "opencv", "torch", "gpu",
            "git_commit"} <= set(results["machine"])  # fmt: skip
    assert results["dataset"]["records"] == 24


def test_saved_json_can_be_judged_again(results, tmp_path):
    from augpipe.bench.report import write_json

    path = tmp_path / "r.json"
    write_json(results, path)
    loaded = json.loads(path.read_text())
    again = decide(figures_from(loaded, loaded["machine"]["cores"]))
    assert again.bottleneck == loaded["bottleneck"]


def test_text_report_names_the_verdict(results):
    from augpipe.bench.report import text_report

    text = text_report(results)
    assert f"bottleneck = {results['bottleneck']}" in text
    for stage in ("shard read, cold", "decode only", "loader, 1 worker(s)", "model fwd+bwd",
                  "end to end"):  # fmt: skip
        assert stage in text


def test_plot_is_skipped_with_a_note_without_matplotlib(results, tmp_path, monkeypatch):
    from augpipe.bench.report import write_plot

    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import fails as if not installed
    note = write_plot(results, tmp_path / "p.png")
    assert note and "matplotlib" in note
    assert not (tmp_path / "p.png").exists()


def test_cli_writes_json(tiny_packed, tmp_path, capsys):
    path = tmp_path / "bench.json"
    assert main(["bench", str(tiny_packed), *FAST, "--workers", "1", "--json", str(path)]) == 0
    data = json.loads(path.read_text())
    assert data["bottleneck"] in BOTTLENECKS
    assert data["config"]["workers"] == [1]
    assert "Verdict: bottleneck =" in capsys.readouterr().out


@pytest.mark.parametrize(
    "extra, needle",
    [
        (["--workers", "1,x"], "--workers"),
        (["--workers", "-1"], "--workers"),
        (["--model", "vgg99"], "--model"),
        (["--amp", "fp16"], "--amp"),
        (["--seconds", "0"], "--seconds"),
    ],
)
def test_cli_user_errors_exit_2(tiny_packed, capsys, extra, needle):
    args = ["bench", str(tiny_packed), *FAST, *extra]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert needle in err and "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_cli_missing_dataset_exits_2(tmp_path, capsys):
    assert main(["bench", str(tmp_path / "nope"), *FAST]) == 2
    assert "nope" in capsys.readouterr().err


def test_cuda_without_a_gpu_is_a_user_error(tiny_packed, capsys):
    import torch

    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    assert main(["bench", str(tiny_packed), *FAST, "--device", "cuda"]) == 2
    assert "--device" in capsys.readouterr().err


def test_timed_rates_discards_warmup_and_repeats():
    calls = []

    def fn() -> int:
        calls.append(1)
        return 10

    r = timed_rates(fn, seconds=0.0, min_repeats=3, warmup=2)
    assert len(calls) == 5 and len(r["rates"]) == 3


def test_drop_page_cache_accepts_plain_files(tmp_path):
    f = tmp_path / "x.bin"
    f.write_bytes(b"\0" * 4096)
    assert drop_page_cache([f]) in (True, False)
    assert f.read_bytes() == b"\0" * 4096


def test_shard_read_leaves_the_shards_cached_for_the_next_stages(tiny_packed, monkeypatch):
    from augpipe.bench import stages
    from augpipe.format.dataset import ShardDataset

    warmed: list[list[str]] = []
    monkeypatch.setattr(stages, "warm_page_cache", lambda paths: warmed.append(list(paths)))
    ds = ShardDataset(tiny_packed)
    out = stages.shard_read(ds, 0.05, 0)
    assert out["fits_in_cache"]
    assert warmed == [[str(p) for p in ds.shard_files()]]
