"""The bench verdict on made-up stage figures: each bottleneck kind is chosen when it should be."""

from __future__ import annotations

import pytest

from augpipe.bench.verdict import BOTTLENECKS, StageFigures, decide, scaling_gain


def figures(**kw) -> StageFigures:
    """A balanced machine where nothing is far off; each test tilts one stage."""
    base = dict(
        decode_per_core=2000.0,
        decode_augment_per_core=1500.0,
        loader={1: 1450.0, 2: 2850.0},
        model=500.0,
        cores=2,
        disk_cold=20000.0,
        disk_warm=500000.0,
        fits_in_cache=True,
    )
    base.update(kw)
    return StageFigures(**base)


def test_model_limits_when_data_side_is_faster():
    v = decide(figures(model=7.0))
    assert v.bottleneck == "model"
    assert v.rate == 7.0
    assert v.headroom == pytest.approx(2850.0 / 7.0)
    assert any("channels_last" in a for a in v.advice)
    # the scaling curve says one worker already feeds this model
    assert any("1 worker(s) suffice" in a for a in v.advice)


def test_cuda_model_limit_advises_amp():
    v = decide(figures(model=300.0, device="cuda", transfer_pinned=1e5, transfer_pageable=3e4))
    assert v.bottleneck == "model"
    assert any("--amp" in a for a in v.advice)
    v_amp = decide(figures(model=300.0, device="cuda", amp="bf16", transfer_pinned=1e5))
    assert not any("--amp bf16" in a for a in v_amp.advice)


def test_decode_limits_when_decode_takes_most_of_a_sample():
    v = decide(figures(model=10000.0, decode_per_core=1000.0, decode_augment_per_core=900.0,
                       loader={1: 880.0, 2: 1750.0}))  # fmt: skip
    assert v.bottleneck == "decode"
    assert v.rate == 1750.0
    assert v.headroom == pytest.approx(10000.0 / 1750.0)
    assert any("--format raw" in a for a in v.advice)


def test_augment_limits_when_augmentation_takes_most_of_a_sample():
    v = decide(figures(model=10000.0, decode_per_core=5000.0, decode_augment_per_core=1000.0,
                       loader={1: 980.0, 2: 1950.0}))  # fmt: skip
    assert v.bottleneck == "augment"
    assert any("augmentation dominates" in a for a in v.advice)


def test_loader_limits_when_it_falls_well_short_of_its_workers():
    v = decide(figures(model=10000.0, decode_augment_per_core=2000.0, loader={1: 500.0, 2: 800.0}))
    assert v.bottleneck == "loader"
    assert v.capacities["augment"] == 4000.0


def test_disk_limits_only_when_shards_do_not_fit_in_the_page_cache():
    cold_slow = dict(model=10000.0, disk_cold=300.0, disk_warm=400000.0)
    assert decide(figures(fits_in_cache=False, **cold_slow)).bottleneck == "disk"
    assert decide(figures(fits_in_cache=True, **cold_slow)).bottleneck != "disk"


def test_transfer_limits_on_cuda_only():
    slow_copy = dict(model=10000.0, transfer_pinned=500.0, transfer_pageable=200.0)
    v = decide(figures(device="cuda", **slow_copy))
    assert v.bottleneck == "transfer"
    assert any("pinned" in a for a in v.advice)
    assert decide(figures(device="cpu", **slow_copy)).bottleneck != "transfer"


def test_every_kind_is_reachable():
    cases = {
        "model": figures(model=1.0),
        "decode": figures(
            model=1e5,
            decode_per_core=1000.0,
            decode_augment_per_core=900.0,
            loader={1: 880.0, 2: 1750.0},
        ),  # fmt: skip
        "augment": figures(
            model=1e5,
            decode_per_core=5000.0,
            decode_augment_per_core=1000.0,
            loader={1: 980.0, 2: 1950.0},
        ),  # fmt: skip
        "loader": figures(model=1e5, loader={1: 100.0, 2: 150.0}),
        "disk": figures(model=1e5, fits_in_cache=False, disk_cold=50.0),
        "transfer": figures(model=1e5, device="cuda", transfer_pinned=60.0),
    }
    assert {k: decide(f).bottleneck for k, f in cases.items()} == {k: k for k in cases}
    assert set(cases) == set(BOTTLENECKS)


def test_more_workers_advice_uses_the_scaling_curve():
    f = figures(model=1e5, cores=8, decode_per_core=1000.0, decode_augment_per_core=900.0,
                loader={1: 880.0, 2: 1750.0})  # fmt: skip
    v = decide(f)
    assert v.bottleneck == "decode"
    assert scaling_gain(f.loader, 8) == (8, pytest.approx(1750.0 + 870.0 * 6))
    assert any(a.startswith("use 8 workers (now 2)") for a in v.advice)
    # a flat curve, or no spare cores: no "more workers" promise
    assert scaling_gain({1: 1000.0, 2: 1010.0}, 8) is None
    assert scaling_gain({1: 1000.0, 2: 1900.0}, 2) is None


def test_memory_advice_when_peak_is_near_the_device_size():
    gib = 2**30
    v = decide(figures(model=100.0, device="cuda", transfer_pinned=1e5, peak_memory=int(76 * gib),
                       device_memory=80 * gib))  # fmt: skip
    assert any("smaller batch" in a for a in v.advice)
    v = decide(figures(model=100.0, device="cuda", transfer_pinned=1e5, peak_memory=10 * gib,
                       device_memory=80 * gib))  # fmt: skip
    assert not any("smaller batch" in a for a in v.advice)


def test_verdict_dict_is_json_ready():
    import json

    d = decide(figures(end_to_end=450.0, data_wait_fraction=0.02)).to_dict()
    assert set(d) == {"bottleneck", "rate", "headroom", "capacities", "reasons", "advice"}
    assert any("waiting for data" in r for r in d["reasons"])
    json.dumps(d)


def test_empty_scaling_curve_is_an_error():
    with pytest.raises(ValueError, match="scaling curve"):
        decide(figures(loader={}))
