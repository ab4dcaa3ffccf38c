"""The loader reads built data; pools give snippets centred on their noteheads."""

from __future__ import annotations

import numpy as np
import pytest
import yaml

from audio_sheet_retrieval.build.dataset import demo_split, make_splits
from audio_sheet_retrieval.data.msmd import Piece, load_split
from audio_sheet_retrieval.data.mung import NOTEHEAD_CLASSES
from audio_sheet_retrieval.data.mutopia import load_pools
from audio_sheet_retrieval.data.pools import Augmentation, SnippetPool, spec_excerpt
from audio_sheet_retrieval.data.prepare import prepare_piece


def test_layout_is_msmd(built_root):
    piece = Piece(built_root, "bach__bwv846")
    assert piece.available_scores == ["bach__bwv846_verovio"]
    assert "bach__bwv846_tempo-1100_ElectricPiano" in piece.available_performances
    score = piece.load_score()
    images = score.load_images()
    assert len(images) == 2 and all(im.shape[1] == 835 and im.dtype == np.uint8 for im in images)
    perf = piece.load_performance("bach__bwv846_tempo-1000_FluidR3Grand", require_audio=True)
    assert perf.audio_path.suffix == ".flac"
    assert perf.load_spectrogram().shape[0] == 92
    assert perf.load_note_events().shape == (533, 5)
    assert len(piece.load_alignment(perf.name)) == 533
    for name in ("notes_01.npy", "systems_01.npy"):
        assert (score.folder / "coords" / name).is_file()
    meta = piece.meta
    assert meta["aligned_noteheads"] == 533 and meta["pages"] == 2


def test_pools_read_built_data(built_root, test_config):
    split = {"train": ["bach__bwv846"], "valid": ["bach__bwv259"], "test": ["bach__bwv259"]}
    path = built_root / "splits" / "t.yaml"
    path.write_text(yaml.safe_dump(split))
    pools = load_pools(built_root, path, test_config, progress=False)
    # train: 2 synths x 2 tempi of bwv846; test: one performance (TimGM6mbPiano at 1.0)
    assert len(pools["train"].perfs) == 4
    assert len(pools["test"].perfs) == 1 and pools["test"].perfs[0][1].synth == "TimGM6mbPiano"
    sheets, specs = pools["train"].pairs(np.arange(10), augment=True, rng=np.random.default_rng(0))
    assert sheets.shape == (10, 160, 200) and sheets.dtype == np.uint8
    assert specs.shape == (10, 92, 42) and specs.dtype == np.float32


def _head_columns(piece: Piece, prepared) -> dict[int, list[float]]:
    """Strip columns of the noteheads at each onset frame of the first performance."""
    key = f"{prepared.performances[0].name}_onset_frame"
    out: dict[int, list[float]] = {}
    for page, objs in enumerate(piece.load_score().load_mungos()):
        for o in objs:
            if o.clsname in NOTEHEAD_CLASSES and key in o.data:
                row, col = o.middle
                x = prepared.unrolled.to_strip(prepared.unrolled.system_of(page, row), row, col)[1]
                out.setdefault(int(o.data[key]), []).append(x)
    return out


def test_snippets_are_centred_on_their_noteheads(built_root):
    piece = Piece(built_root, "bach__bwv846")
    prepared = prepare_piece(piece, ["FluidR3Grand"], (1.0, 1.0))
    heads = _head_columns(piece, prepared)
    perf = prepared.performances[0]
    pool = SnippetPool([prepared], augmentation=Augmentation(5, (0.95, 1.05), 1))
    strip = prepared.strip
    for e in range(len(pool)):
        x = pool.entity_x[e]
        # the entity's x is where its onset's noteheads are (chords: within a head width)
        assert min(abs(np.array(heads[int(perf.frames[e])]) - x)) <= 6
    plain, _ = pool.pairs(np.arange(len(pool)), augment=False)
    for e in range(len(pool)):
        x = int(np.floor(pool.entity_x[e] + 0.5))
        np.testing.assert_array_equal(plain[e][:, 100], strip[20:180, x])
    # augmented: the centre column still shows the notehead's ink in most snippets
    aug, _ = pool.pairs(np.arange(len(pool)), augment=True, rng=np.random.default_rng(1))
    centre_ink = (aug[:, :, 97:104] < 128).any(axis=(1, 2))
    assert centre_ink.mean() > 0.99


def test_spec_excerpt_is_centred_and_padded():
    spec = np.arange(5 * 100, dtype=np.float32).reshape(5, 100)
    ex = spec_excerpt(spec, 50, 42)
    np.testing.assert_array_equal(ex, spec[:, 29:71])
    edge = spec_excerpt(spec, 3, 42)
    assert np.all(edge[:, :18] == 0) and np.array_equal(edge[:, 18:], spec[:, :24])


def test_test_pool_is_fixed_and_ordered(built_root, test_config):
    split = {"train": [], "valid": [], "test": ["bach__bwv259", "bach__bwv846"]}
    path = built_root / "splits" / "t2.yaml"
    path.write_text(yaml.safe_dump(split))
    a = load_pools(built_root, path, test_config, kinds=("test",), progress=False)["test"]
    b = load_pools(built_root, path, test_config, kinds=("test",), progress=False)["test"]
    assert a.piece_names == ["bach__bwv259", "bach__bwv846"]
    assert np.all(np.diff(a.entity_frame[a.entity_piece == 0]) > 0)
    np.testing.assert_array_equal(a.pairs(np.arange(50))[1], b.pairs(np.arange(50))[1])


def test_splits_are_reproducible():
    names = [f"p{i:03d}" for i in range(100)]
    a, b, c = make_splits(names, seed=3), make_splits(names, seed=3), make_splits(names, seed=4)
    assert a == b and a != c
    assert sorted(a["train"] + a["valid"] + a["test"]) == names
    assert 10 <= len(a["test"]) <= 30 and 1 <= len(a["valid"]) <= 12  # about 20 % and 6 %
    demo = demo_split(a)
    assert set(demo["test"]) <= set(a["test"]) and len(demo["train"]) == 24


def test_build_writes_splits_and_manifest(built_root):
    split = load_split(built_root / "splits" / "all_split.yaml")
    assert sorted(sum(split.values(), [])) == ["bach__bwv259", "bach__bwv846"]
    manifest = yaml.safe_load((built_root / "manifest.yaml").read_text())
    assert manifest["totals"]["pieces"] == 2
    assert manifest["totals"]["aligned_noteheads"] == 533 + 227
    assert manifest["options"]["synths"] == ["FluidR3Grand", "TimGM6mbPiano", "ElectricPiano"]
    assert "verovio" in manifest["versions"]


@pytest.mark.parametrize("split_text", ["train: [nope]\nvalid: []\ntest: []\n"])
def test_split_naming_absent_piece(built_root, test_config, split_text):
    from audio_sheet_retrieval.errors import AsrError

    path = built_root / "splits" / "bad.yaml"
    path.write_text(split_text)
    with pytest.raises(AsrError, match="absent.*nope"):
        load_pools(built_root, path, test_config, progress=False)
