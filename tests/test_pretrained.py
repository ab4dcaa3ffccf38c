"""The shipped models reach what their model card claims, on a rebuilt held-out test split."""

from __future__ import annotations

import pytest
import yaml

from audio_sheet_retrieval import pretrained
from audio_sheet_retrieval.build.dataset import build_dataset
from audio_sheet_retrieval.build.pipeline import BuildOptions
from audio_sheet_retrieval.build.sources import resolve
from audio_sheet_retrieval.data.mutopia import load_pools
from audio_sheet_retrieval.eval.snippet_retrieval import snippet_retrieval

SHIPPED = pretrained.available()


def test_the_default_model_is_shipped_with_a_card():
    assert pretrained.DEFAULT_MODEL in SHIPPED
    card = (pretrained.PRETRAINED_DIR / "MODEL_CARD.md").read_text()
    for name in SHIPPED:
        assert f"## {name}" in card
        assert (pretrained.PRETRAINED_DIR / name / "params.pt").stat().st_size < 5 * 2**20


@pytest.fixture(scope="module")
def rebuilt_test_root(tmp_path_factory):
    """The held-out test pieces of the shipped models, rebuilt with their test synth at tempo 1."""
    meta = pretrained.pretrained_meta(pretrained.DEFAULT_MODEL)
    root = tmp_path_factory.mktemp("pretrained_test")
    options = BuildOptions(synths=(meta["config"]["TEST_SYNTH"],),
                           tempi=(float(meta["config"]["TEST_TEMPO"]),), keep_audio=False)
    reports, _ = build_dataset(resolve(meta["test_sources"]), root, options, jobs=2)
    assert [r.name for r in reports if r.status != "built"] == []
    split = root / "splits" / "pretrained_test_split.yaml"
    split.write_text(yaml.safe_dump({"train": [], "valid": [], "test": meta["test_pieces"]}))
    return root, split


@pytest.mark.parametrize("name", SHIPPED)
@pytest.mark.parametrize("direction", ["A2S", "S2A"])
def test_shipped_model_reaches_its_claimed_mrr(rebuilt_test_root, name, direction):
    root, split = rebuilt_test_root
    model, config, meta = pretrained.load_pretrained(name)
    assert sorted(meta["test_pieces"]) == sorted(
        pretrained.pretrained_meta(pretrained.DEFAULT_MODEL)["test_pieces"])
    pool = load_pools(root, split, config, kinds=("test",), progress=False)["test"]
    result = snippet_retrieval(model, pool, n_test=2000, direction=direction, progress=False)
    claimed = meta["evaluation"][f"eval_{direction}_1000"]["map"]
    assert result.metrics["MRR"] >= claimed - 1e-3, (result.metrics["MRR"], claimed)
