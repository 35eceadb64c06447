"""Policies: config strings, op frequencies and magnitudes against their definitions
(chi-square over many indices), geometry against PIL, AugMix's mixing, per-sample draws."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from augpipe import transforms as T
from augpipe.errors import ConfigError
from augpipe.ops.pixel import program as P
from augpipe.ops.policies import strings
from augpipe.ops.policies import timm as TM
from augpipe.ops.policies import torchvision as TV
from augpipe.ops.policies import vocab as V
from augpipe.spec import load_pipeline
from augpipe.synth import make_image

N = 6000
IDX = np.arange(N)
OUT = (32, 32)
# chi-square critical values at p = 0.001 by degrees of freedom (the draws are deterministic:
# a failure is a wrong distribution, not bad luck)
CHI2_001 = {2: 13.82, 9: 27.88, 12: 32.91, 13: 34.53, 14: 36.12, 24: 51.18, 30: 59.70}


def _chi2(observed, expected) -> float:
    observed, expected = np.asarray(observed, float), np.asarray(expected, float)
    return float(((observed - expected) ** 2 / expected).sum())


def _counts(values, categories):
    return np.array([(values == c).sum() for c in categories])


# ------------------------------------------------------------------ config strings


def test_rand_string_parses_into_timm_parameters():
    op = strings.policy_from_string("rand-m9-mstd0.5-inc1")
    assert op == TM.TimmRandAugment(m=9, n=2, p=0.5, mstd=0.5, inc=True)
    op = strings.policy_from_string("rand-n3-m7-p0.8-mmax15-tweights")
    assert (op.n, op.m, op.p, op.mmax, op.t, op.inc) == (3, 7, 0.8, 15, "weights", False)
    assert strings.policy_from_string("rand-m9-inc0").inc is False  # timm reads inc0 as on
    assert strings.policy_from_string("rand").m == 10


def test_other_strings_parse():
    assert strings.policy_from_string("augmix-m5-w4-d2") == T.AugMix(5, 4, 2)
    am = strings.policy_from_string("augmix-a0.5-mstd1")
    assert am.alpha == 0.5 and am.mstd == 1.0 and am.depth == -1 and am.severity == 3
    assert strings.policy_from_string("original-mstd0.5") == T.TimmAutoAugment("original", 0.5)
    assert strings.policy_from_string("v0") == T.TimmAutoAugment("v0")
    assert strings.policy_from_string("autoaugment") == T.AutoAugment("imagenet")
    assert strings.policy_from_string("trivialaugment") == T.TrivialAugmentWide()
    assert strings.policy_from_string("randaugment-n3-m5") == T.RandAugment(3, 5)


@pytest.mark.parametrize("text,key", [("rand-m9-x3", "'x'"), ("rand-m9x", "'m'"),
                                      ("rand-m", "'m'"), ("augmix-m5-q2", "'q'"),
                                      ("rand-m9-m8", "'m'"), ("original-m3", "'m'"),
                                      ("randx-m9", "'randx'"), ("rand-n0", "TimmRandAugment.n"),
                                      ("rand-m9-tfoo", "TimmRandAugment.t")])  # fmt: skip
def test_malformed_strings_name_the_key(text, key):
    with pytest.raises(ConfigError) as e:
        strings.policy_from_string(text)
    assert key in str(e.value) and "\n" not in str(e.value)


def test_string_spec_is_a_training_pipeline():
    pipe = load_pipeline("rand-m9-mstd0.5-inc1", size=24)
    assert [type(o).__name__ for o in pipe.ops] == ["RandomResizedCrop", "HorizontalFlip",
                                                    "TimmRandAugment"]  # fmt: skip
    assert pipe.output_shape == (24, 24, 3)
    with pytest.raises(ConfigError, match="'z'"):
        load_pipeline("rand-m9-z1")


# ------------------------------------------------------------------ frequencies


TV_KINDS = [V.IDENTITY, V.SHEAR_X, V.SHEAR_Y, V.TRANSLATE_X, V.TRANSLATE_Y, V.ROTATE,
            V.step(P.BRIGHTNESS), V.step(P.COLOR), V.CONTRAST_TV, V.step(P.SHARPNESS),
            V.step(P.POSTERIZE), V.step(P.SOLARIZE), V.step(P.AUTOCONTRAST),
            V.step(P.EQUALIZE)]  # fmt: skip


def test_torchvision_randaugment_ops_are_uniform_over_14_and_always_applied():
    kinds, values = T.RandAugment(2, 9).draw(IDX, 3, 1, 0, OUT)
    for j in range(2):
        c = _counts(kinds[:, j], TV_KINDS)
        assert c.sum() == N  # always applied, never Invert
        assert _chi2(c, np.full(14, N / 14)) < CHI2_001[13]
    rot = values[kinds[:, 0] == V.ROTATE, 0]
    assert np.allclose(np.abs(rot), 9 * 30 / 30)  # linspace(0, 30, 31)[9] = 9 degrees
    assert abs((rot > 0).mean() - 0.5) < 0.08
    post = values[kinds[:, 0] == V.step(P.POSTERIZE), 0]
    assert np.all(post == round(8 - 9 / (30 / 4)))  # 7 bits
    sol = values[kinds[:, 0] == V.step(P.SOLARIZE), 0]
    assert np.allclose(sol, 255 * (1 - 9 / 30))
    br = values[kinds[:, 0] == V.step(P.BRIGHTNESS), 0]
    assert np.allclose(np.sort(np.unique(br)), [1 - 0.27, 1 + 0.27])


def test_trivial_augment_wide_bins_are_uniform():
    kinds, values = T.TrivialAugmentWide().draw(IDX, 5, 0, 0, OUT)
    c = _counts(kinds[:, 0], TV_KINDS)
    assert _chi2(c, np.full(14, N / 14)) < CHI2_001[13]
    rot = values[kinds[:, 0] == V.ROTATE, 0]
    bins = np.round(np.abs(rot) / 135 * 30).astype(int)
    assert np.allclose(np.abs(rot), bins * 135 / 30)
    assert _chi2(_counts(bins, range(31)), np.full(31, len(rot) / 31)) < CHI2_001[30]


def test_timm_rand_applies_each_layer_with_p_and_uniform_ops():
    op = TM.TimmRandAugment(m=9, n=2, p=0.5, mstd=0.5, inc=True)
    kinds, values = op.draw(IDX, 7, 2, 0, OUT)
    names = TM.RAND_INCREASING
    cats = [TM.OPS[nm][0] for nm in names]
    assert len(set(cats)) == 15
    for j in range(2):
        applied = ~np.isnan(values[:, j])
        assert abs(applied.mean() - 0.5) < 0.03
        c = _counts(kinds[applied, j], cats)
        assert _chi2(c, np.full(15, applied.sum() / 15)) < CHI2_001[14]
    rot = np.abs(values[kinds == V.ROTATE])  # level * 30, level ~ clip(N(9, 0.5), 0, 10) / 10
    assert abs(rot.mean() / 3 - 9.0) < 0.1 and abs(rot.std() / 3 - 0.5) < 0.06
    sol = values[kinds == V.step(P.SOLARIZE)]  # increasing: 256 - int(level * 256)
    assert np.all((sol >= 256 - 256) & (sol <= 256 - int(0.7 * 256)))


def test_timm_rand_without_noise_clips_to_ten():
    kinds, values = TM.TimmRandAugment(m=15, p=1.0).draw(IDX[:500], 0, 0, 0, OUT)
    assert np.allclose(np.abs(values[kinds == V.ROTATE]), 30.0)
    kinds, values = TM.TimmRandAugment(m=15, p=1.0, mmax=20).draw(IDX[:500], 0, 0, 0, OUT)
    assert np.allclose(np.abs(values[kinds == V.ROTATE]), 45.0)


def test_timm_weighted_choice_is_without_replacement_and_weighted():
    kinds, _ = TM.TimmRandAugment(m=9, n=2, p=1.0, t="weights").draw(IDX, 1, 0, 0, OUT)
    names = tuple(TM.RAND_WEIGHTS)
    w = np.array(list(TM.RAND_WEIGHTS.values()))
    rot = kinds[:, 0] == V.ROTATE
    assert abs(rot.mean() - 3 / w.sum()) < 0.03
    both_rot = (kinds[:, 0] == V.ROTATE) & (kinds[:, 1] == V.ROTATE)
    assert not np.any(both_rot)
    assert names[0] == "Rotate"


def _aa_expected(policy, j, kind_of):
    exp: dict[int, float] = {}
    for sp in policy:
        name, p = sp[j][0], sp[j][1]
        k = kind_of(name)
        exp[k] = exp.get(k, 0.0) + p / len(policy)
        exp[-1] = exp.get(-1, 0.0) + (1 - p) / len(policy)
    return exp


@pytest.mark.parametrize("which", ["tv", "timm-original", "timm-v0"])
def test_autoaugment_slot_frequencies_match_the_policy_table(which):
    if which == "tv":
        op, table = T.AutoAugment(), TV.IMAGENET_POLICY
        kind_of = lambda nm: TV._SPACE[nm][0]  # noqa: E731
    else:
        name = which.split("-")[1]
        op, table = T.TimmAutoAugment(name), TM.AA_POLICIES[name]
        kind_of = lambda nm: TM.OPS[nm][0]  # noqa: E731
    kinds, values = op.draw(IDX, 2, 0, 0, OUT)
    for j in range(2):
        exp = _aa_expected(table, j, kind_of)
        obs = np.where(np.isnan(values[:, j]), -1, kinds[:, j])
        cats = [k for k in exp if exp[k] > 0]
        e = np.array([exp[k] * N for k in cats])
        c = _counts(obs, cats)
        assert c.sum() == N
        df = len(cats) - 1
        crit = CHI2_001.get(df) or 3.3 * df  # generous bound for odd df
        assert _chi2(c, e) < crit


def test_augmix_weights_depths_and_blend():
    op = T.AugMix(severity=3, width=3, depth=-1)
    kinds, values, ws, m = op.draw(IDX[:3000], 4, 0, 0, OUT)
    assert np.allclose(ws.sum(axis=1), 1.0, atol=1e-5) and np.all(ws >= 0)
    assert abs(ws[:, 0].mean() - 1 / 3) < 0.02  # Dirichlet(1, 1, 1): mean 1/3, var 1/18
    assert abs(ws[:, 0].var() - 1 / 18) < 0.008
    assert np.all((m >= 0) & (m <= 1)) and abs(m.mean() - 0.5) < 0.02  # Beta(1, 1)
    depth = (~np.isnan(values)).sum(axis=2)  # chain depths uniform in 1..3
    assert _chi2(_counts(depth.ravel(), (1, 2, 3)), np.full(3, depth.size / 3)) < CHI2_001[2]
    rot = np.abs(values[kinds == V.ROTATE]) / 30 * 10  # magnitude U(0, 3)
    assert rot.max() <= 3.0 + 1e-9 and abs(rot.mean() - 1.5) < 0.1
    _, _, ws2, _ = T.AugMix(alpha=0.5).draw(IDX[:3000], 4, 0, 0, OUT)
    assert abs(ws2[:, 0].mean() - 1 / 3) < 0.03


def test_augmix_with_zero_severity_is_the_image():
    img = make_image(0, 3, 20, 24, np.random.default_rng(0))
    out = T.Compose([T.AugMix(severity=0, width=2, depth=1)])(img, index=1)
    # magnitude 0: identity geometry; enhance factors 1 +- 0; equalize/autocontrast still act
    assert out.shape == img.shape


# ------------------------------------------------------------------ geometry vs PIL


def _with_policy_map(img, G, fill=(0, 0, 0)):
    pipe = T.Compose([T.CenterCrop(img.shape[:2])])
    rec = pipe.sample_params([img.shape[:2]], [0])[0]
    rec["geo"], rec["clip"], rec["pfill"] = G, True, fill
    return pipe.apply(img, rec)


def _smooth(h=48, w=56):
    yy, xx = np.mgrid[0:h, 0:w]
    img = np.stack([128 + 100 * np.sin(xx / 7.0), 128 + 100 * np.cos(yy / 9.0),
                    (xx * 2 + yy * 3) % 256], axis=2)  # fmt: skip
    return img.clip(0, 255).astype(np.uint8)


@pytest.mark.parametrize("kind,value,pil", [
    (V.ROTATE, 20.0, lambda im, f: im.rotate(20.0, Image.BILINEAR, fillcolor=f)),
    (V.SHEAR_X, 0.25, lambda im, f: im.transform(im.size, Image.AFFINE, (1, 0.25, 0, 0, 1, 0),
                                                 Image.BILINEAR, fillcolor=f)),
    (V.SHEAR_Y, -0.2, lambda im, f: im.transform(im.size, Image.AFFINE, (1, 0, 0, -0.2, 1, 0),
                                                 Image.BILINEAR, fillcolor=f)),
    (V.TRANSLATE_X, 9.0, lambda im, f: im.transform(im.size, Image.AFFINE, (1, 0, 9, 0, 1, 0),
                                                    Image.BILINEAR, fillcolor=f)),
])  # fmt: skip
def test_policy_geometry_matches_pil(kind, value, pil):
    img = _smooth()
    G = V.geometry(np.array([[kind]]), np.array([[value]]), img.shape[:2])[0]
    out = _with_policy_map(img, G, (124, 116, 104)).astype(int)
    ref = np.asarray(pil(Image.fromarray(img), (124, 116, 104))).astype(int)
    d = np.abs(out - ref).max(axis=2)
    assert np.mean(d <= 3) > 0.93  # edges of the fill differ (bilinear vs hard cut)
    assert np.median(d) <= 1


def test_policy_rotation_fills_outside_the_crop_not_real_pixels():
    img = np.full((40, 40, 3), 200, np.uint8)
    img[10:30, 10:30] = 50  # the crop's content; the ring outside the crop is 200
    pipe = T.Compose([T.CenterCrop(20), T.TrivialAugmentWide(fill=(7, 7, 7))])
    recs = pipe.sample_params([img.shape[:2]] * 400, np.arange(400))
    rot = np.abs(np.arctan2(recs["geo"][:, 1, 0], recs["geo"][:, 0, 0])) > np.deg2rad(30)
    j = int(np.flatnonzero(rot & recs["clip"])[0])
    out = pipe.apply(img, recs[j])
    assert np.any(np.all(out == 7, axis=2))  # corners are fill
    assert not np.any(np.all(out == 200, axis=2))  # never the pixels beyond the crop
    assert np.all((out == 7) | (out == 50) | (out < 200))


def test_policies_draw_per_sample_not_per_batch():
    pipe = load_pipeline("rand-m9-mstd0.5-inc1", size=16)
    sizes = np.array([[30, 40]] * 8)
    batch = pipe.sample_params(sizes, np.arange(8), seed=3, epoch=1)
    for j in range(8):
        alone = pipe.sample_params(sizes[:1], [j], seed=3, epoch=1)
        assert batch[j].tobytes() == alone[0].tobytes()
    assert len({r.tobytes()[-200:] for r in batch["prog"]}) > 1


def test_augmix_renders_base_plus_chains_in_one_call():
    img = _smooth(24, 24)
    pipe = T.Compose([T.CenterCrop(24), T.AugMix(severity=5, width=3, depth=2)])
    rec = pipe.sample_params([img.shape[:2]], [4])[0]
    out = pipe.apply(img, rec).astype(np.float64)
    # recompute the mix from each chain rendered alone
    from augpipe.ops.pixel.tile import run_program

    acc = np.zeros_like(out)
    for c in range(3):
        one = rec.copy()
        one["nchain"] = 0
        one["geo"], one["clip"] = rec["cgeo"][c], True
        one["prog"][:] = 0
        tile = pipe.apply(img, one).copy()
        run_program(tile, rec["chain"][c], rec["carg"][c])
        acc += rec["cmix"][c] * tile
    mixed = np.clip(acc, 0, 255).astype(np.uint8).astype(np.float64)
    ref = np.clip(img + rec["cm"] * (mixed - img), 0, 255)
    assert np.abs(out - np.floor(ref)).max() <= 1
    assert not np.array_equal(out.astype(np.uint8), img)


def test_policy_translation_takes_the_axis_kernel_with_the_same_result():
    # a pure shift of a crop inside the source: the axis kernel (clamped) + canvas clip must
    # equal the general warp kernel + clip (the warp is what rotations take)
    img = _smooth(40, 48)
    pipe = T.Compose([T.CenterCrop((30, 36))])
    rec = pipe.sample_params([img.shape[:2]], [0])[0]
    for t in (7.0, -11.3, 40.0):  # (a boundary exactly on a pixel centre would flip)
        G = np.eye(3)
        G[0, 2], G[1, 2] = t, -t / 2
        a = rec.copy()
        a["geo"], a["clip"], a["pfill"] = G, True, (9, 9, 9)
        out = pipe.apply(img, a)
        G2 = G.copy()
        G2[0, 1] = 1e-12  # not axis-aligned: forces the warp kernel
        b = a.copy()
        b["geo"] = G2
        ref = pipe.apply(img, b)
        assert np.abs(out.astype(int) - ref).max() <= 1
        assert np.all(out[:, 36 - min(int(abs(t)), 36) :] == 9) if t > 0 else True


def test_torchvision_slot_table_equals_the_per_sample_rules():
    # _slot looks the arguments up in a table of every op at every bin: the same floats as
    # applying torchvision's rules to each sample alone
    rng = np.random.default_rng(4)
    enhance = (V.step(P.BRIGHTNESS), V.step(P.COLOR), V.CONTRAST_TV, V.step(P.SHARPNESS))
    for names, wide in ((TV.RANDAUGMENT_OPS, False), (TV.RANDAUGMENT_OPS, True),
                        (tuple(TV._SPACE), False)):  # fmt: skip
        n, bins = 120, int(rng.integers(2, 40))
        which, idx = rng.integers(0, len(names), n), rng.integers(0, bins, n)
        neg = rng.random(n) < 0.5
        kinds, values = TV._slot(names, which, idx, neg, bins, (200, 150), wide)
        for s in range(n):
            kind, _, signed = TV._SPACE[names[which[s]]]
            v = TV._value(names[which[s]], idx[s : s + 1], bins, (200, 150), wide)[0]
            v = -v if signed and neg[s] else v
            if kind in (V.TRANSLATE_X, V.TRANSLATE_Y):
                v = -np.trunc(v)
            if kind in enhance:
                v = 1.0 + v
            assert kinds[s] == kind and values[s] == v, (names[which[s]], idx[s], neg[s])
