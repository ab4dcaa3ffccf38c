"""Tests of audio_sheet_retrieval.nn: CCA layer, attention, loss, model files, loader."""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pytest
import scipy.linalg
import torch

from audio_sheet_retrieval.errors import AsrError
from audio_sheet_retrieval.nn import (
    CCAProjection,
    LearnedProjection,
    SoftAttention,
    TwoBranchModel,
    cca_statistics,
    load_model_module,
    model_name,
    ranking_loss,
)

REPO = Path(__file__).resolve().parents[1]
MODEL_FILES = sorted((REPO / "models").glob("*.py"))
CONFIG = {"SPEC_BINS": 92, "SPEC_CONTEXT": 42, "STAFF_HEIGHT": 160, "SHEET_CONTEXT": 200}


@pytest.fixture(autouse=True)
def _small_torch():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)   # tiny ops; threads only add overhead on a shared CPU
    torch.manual_seed(0)
    yield
    torch.set_num_threads(threads)


# ---------------------------------------------------------------- CCA layer

def _correlated_views(m: int, rho: np.ndarray, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Two views whose latent pairs have correlations ``rho``, each mixed by a random matrix."""
    rng = np.random.default_rng(seed)
    d = len(rho)
    l1 = rng.standard_normal((m, d))
    l2 = rho * l1 + np.sqrt(1 - rho ** 2) * rng.standard_normal((m, d))

    def mixing() -> np.ndarray:  # well conditioned, so the 1e-3 ridge hardly biases
        return np.linalg.qr(rng.standard_normal((d, d)))[0] * rng.uniform(1, 3, d)

    return l1 @ mixing() + 3.0, l2 @ mixing() - 1.0


def _scipy_cca(x1: np.ndarray, x2: np.ndarray, r: float) -> tuple[np.ndarray, np.ndarray,
                                                                    np.ndarray]:
    """Reference CCA via the generalised eigenproblem Σ12 Σ22⁻¹ Σ21 u = ρ² Σ11 u."""
    c1, c2 = x1 - x1.mean(0), x2 - x2.mean(0)
    m, d = x1.shape
    s11 = c1.T @ c1 / (m - 1) + r * np.eye(d)
    s22 = c2.T @ c2 / (m - 1) + r * np.eye(d)
    s12 = c1.T @ c2 / (m - 1)
    lam, u = scipy.linalg.eigh(s12 @ np.linalg.solve(s22, s12.T), s11)
    order = np.argsort(lam)[::-1]
    rho, u = np.sqrt(np.clip(lam[order], 0, None)), u[:, order]
    v = np.linalg.solve(s22, s12.T @ u) / rho
    return rho, c1 @ u, c2 @ v


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_cca_matches_scipy(dtype):
    true_rho = np.array([0.95, 0.85, 0.7, 0.55, 0.4, 0.25, 0.1, 0.0])
    x1, x2 = _correlated_views(2000, true_rho)
    rho_ref, z1_ref, z2_ref = _scipy_cca(x1, x2, r=1e-3)

    layer = CCAProjection(8, r1=1e-3, r2=1e-3).train()
    z1, z2 = layer(torch.tensor(x1, dtype=dtype), torch.tensor(x2, dtype=dtype))
    assert z1.dtype == dtype and z1.shape == (2000, 8)
    rho = layer.correlations.detach().numpy()
    np.testing.assert_allclose(rho, rho_ref, atol=1e-6)
    np.testing.assert_allclose(rho, true_rho, atol=0.05)   # sampling error ~ 1/sqrt(2000)
    assert np.all(np.diff(rho) <= 0)
    # each projected component equals the reference one up to sign and scale
    for z, ref in ((z1, z1_ref), (z2, z2_ref)):
        c = np.corrcoef(z.detach().numpy().astype(np.float64).T, ref.T)[:8, 8:]
        np.testing.assert_allclose(np.abs(np.diag(c)[:7]), 1.0, atol=1e-4)
    # paired components are positively correlated with the canonical correlation
    zz1, zz2 = z1.detach().double().numpy(), z2.detach().double().numpy()
    cross = np.diag(zz1.T @ zz2) / (len(zz1) - 1)
    np.testing.assert_allclose(cross, rho_ref, atol=1e-4)


def test_cca_eval_uses_stored_statistics_and_set_statistics():
    x1, x2 = (torch.tensor(x, dtype=torch.float32)
              for x in _correlated_views(500, np.array([0.9, 0.6, 0.3, 0.1])))
    layer = CCAProjection(4).train()
    z1_train, z2_train = layer(x1, x2)
    layer.eval()
    z1_eval, z2_eval = layer(x1, x2)
    torch.testing.assert_close(z1_eval, z1_train.detach(), atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(z2_eval, z2_train.detach(), atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(layer.project2(x2[:3]), z2_train[:3].detach(), atol=1e-4,
                               rtol=1e-4)
    fit = cca_statistics(x1[:100].double(), x2[:100].double())
    layer.set_statistics(fit.mean1, fit.mean2, fit.U, fit.V, fit.correlations)
    torch.testing.assert_close(layer.correlations, fit.correlations.float())
    torch.testing.assert_close(layer.U, fit.U.float())
    torch.testing.assert_close(layer.project1(x1), ((x1.double() - fit.mean1) @ fit.U).float())
    with pytest.raises(ValueError, match="U must have shape"):
        layer.set_statistics(fit.mean1, fit.mean2, fit.U[:2], fit.V)


def test_cca_running_moments_average_batches():
    views = [torch.tensor(x, dtype=torch.float32)
             for x in _correlated_views(2000, np.array([0.9, 0.6, 0.3, 0.1]))]
    last_only, running = CCAProjection(4, momentum=1.0).train(), CCAProjection(4, momentum=0.05).train()
    for lo in range(0, 2000, 100):
        for layer in (last_only, running):
            layer(views[0][lo:lo + 100], views[1][lo:lo + 100])
    # momentum 1 stores the last batch's own fit, as the original did
    last = cca_statistics(views[0][-100:].double(), views[1][-100:].double())
    torch.testing.assert_close(last_only.U, last.U.float(), atol=1e-4, rtol=1e-4)
    # the running fit is close to the fit on all 2000 pairs, the last-batch fit is not
    full = cca_statistics(views[0].double(), views[1].double()).correlations.float()
    err_running = (running.stored_correlations - full).abs().max()
    err_last = (last_only.stored_correlations - full).abs().max()
    assert err_running < 0.08 and err_running < err_last
    assert int(running.num_batches) == 20


def test_cca_loads_checkpoints_without_running_moments():
    layer = CCAProjection(4)
    state = {k: v for k, v in layer.state_dict().items() if not k.startswith(("run_", "num_"))}
    fresh = CCAProjection(4)
    fresh.load_state_dict(state)  # strict: the missing running moments start afresh
    assert int(fresh.num_batches) == 0


def test_cca_gradcheck():
    gen = torch.Generator().manual_seed(3)
    h1 = torch.randn(40, 4, dtype=torch.float64, generator=gen)
    mix = torch.randn(4, 4, dtype=torch.float64, generator=gen)
    h2 = 0.7 * h1 @ mix + torch.randn(40, 4, dtype=torch.float64, generator=gen)
    h1.requires_grad_(True)
    h2.requires_grad_(True)
    layer = CCAProjection(4).train()
    assert torch.autograd.gradcheck(lambda a, b: layer(a, b), (h1, h2))
    assert torch.autograd.gradcheck(lambda a, b: cca_statistics(a, b).correlations, (h1, h2))


def _whitened_pairs(m: int, rho: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Views with identity covariances and cross-covariance exactly diag(rho)."""
    d = len(rho)
    w = torch.randn(m, 2 * d, dtype=torch.float64)
    w = torch.linalg.qr(w - w.mean(0))[0] * (m - 1) ** 0.5
    return w[:, :d], w[:, :d] * rho + w[:, d:] * torch.sqrt(1 - rho ** 2)


def test_cca_gradient_with_coinciding_correlations():
    a0, b0 = _whitened_pairs(200, torch.tensor([0.9, 0.5, 0.5, 0.2], dtype=torch.float64))
    layer = CCAProjection(4).train()

    def loss(a, b):
        return ranking_loss(*layer(a, b), symmetric=True)

    a, b = a0.clone().requires_grad_(True), b0.clone().requires_grad_(True)
    loss(a, b).backward()
    rho = layer.correlations.detach()
    assert abs(rho[1] - rho[2]) < 1e-10          # two correlations coincide exactly
    assert torch.isfinite(a.grad).all() and torch.isfinite(b.grad).all()
    # the loss is invariant to the rotation ambiguity, so its gradient is well defined:
    # compare directional derivatives with central differences
    for _ in range(2):
        da, db = torch.randn_like(a0), torch.randn_like(b0)
        step = 1e-6
        numeric = (loss(a0 + step * da, b0 + step * db)
                   - loss(a0 - step * da, b0 - step * db)) / (2 * step)
        analytic = (a.grad * da).sum() + (b.grad * db).sum()
        assert abs(numeric - analytic) < 1e-6 * max(1.0, abs(analytic))
    # identical whitened views: all correlations equal; float32 as in training
    x = a0.float().requires_grad_(True)
    ranking_loss(*CCAProjection(4).train()(x, x)).backward()
    assert torch.isfinite(x.grad).all()


@pytest.mark.parametrize("case", ["duplicated", "constant"])
def test_cca_gradient_with_singular_covariance(case):
    x = torch.randn(100, 32)
    y = 0.3 * x @ torch.randn(32, 32) + torch.randn(100, 32)
    if case == "duplicated":
        x[:, 3] = x[:, 2]
    else:
        x[:, 5] = 1.0
    x.requires_grad_(True)
    y.requires_grad_(True)
    z1, z2 = CCAProjection(32).train()(x, y)
    loss = ranking_loss(z1, z2)
    loss.backward()
    assert torch.isfinite(loss)
    assert torch.isfinite(x.grad).all() and torch.isfinite(y.grad).all()


def test_learned_projection():
    layer = LearnedProjection(4, momentum=0.5).train()
    h1, h2 = torch.randn(16, 4) + 2.0, torch.randn(16, 4) - 1.0
    z1, z2 = layer(h1, h2)
    torch.testing.assert_close(z1, h1 - h1.mean(0))        # identity at start
    torch.testing.assert_close(layer.mean1, 0.5 * h1.mean(0))
    ranking_loss(z1, z2).backward()
    assert layer.U.grad is not None and layer.V.grad is not None
    layer.eval()
    torch.testing.assert_close(layer.project2(h2), h2 - layer.mean2)
    layer.set_statistics(torch.zeros(4), torch.ones(4), 2 * torch.eye(4), torch.eye(4))
    torch.testing.assert_close(layer(h1, h2)[0], 2 * h1)


# ---------------------------------------------------------------- attention

@pytest.mark.parametrize("n_frames", [42, 84, 37])
def test_attention(n_frames):
    att = SoftAttention(n_filters=4).eval()
    x = torch.randn(3, 1, 92, n_frames)
    out, a = att(x)                              # a fresh layer is uniform: the identity
    torch.testing.assert_close(out, x)
    torch.testing.assert_close(a, torch.full((3, n_frames), 1.0 / n_frames))
    torch.nn.init.normal_(att.logit.weight)
    out, a = att(x)
    assert out.shape == x.shape and a.shape == (3, n_frames)
    torch.testing.assert_close(a.sum(1), torch.ones(3))
    assert (a > 0).all() and a.std(1).min() > 0
    torch.testing.assert_close(out, x * a[:, None, None, :] * n_frames)


# ---------------------------------------------------------------- loss

def test_ranking_loss():
    codes = torch.eye(6, 32)
    assert ranking_loss(codes, codes, margin=0.7).item() == 0.0
    assert ranking_loss(codes, codes, margin=0.7, symmetric=True).item() == 0.0
    # margin > 1 cannot be met by orthogonal codes: each term is margin - 1
    assert ranking_loss(codes, codes, margin=1.5).item() == pytest.approx(0.5)
    swapped = codes[[1, 0, 2, 3, 4, 5]]
    assert ranking_loss(codes, swapped).item() > 0
    z_s = torch.randn(8, 32)
    z_a = z_s + 0.8 * torch.randn(8, 32)      # some hinge terms active, some not
    sim = torch.nn.functional.normalize(z_s) @ torch.nn.functional.normalize(z_a).T
    off = ~torch.eye(8, dtype=torch.bool)
    sheet = (0.7 - sim.diagonal()[:, None] + sim).clamp_min(0)[off].mean()
    audio = (0.7 - sim.diagonal()[None, :] + sim).clamp_min(0)[off].mean()
    torch.testing.assert_close(ranking_loss(z_s, z_a), sheet)
    torch.testing.assert_close(ranking_loss(z_s, z_a, symmetric=True), (sheet + audio) / 2)
    assert 0 < sheet < 0.7 and not torch.isclose(sheet, audio)
    torch.testing.assert_close(ranking_loss(z_a, z_s), audio)


# ---------------------------------------------------------------- model files

def _model_cases():
    for path in MODEL_FILES:
        yield pytest.param(path, 42, id=f"{path.stem}-42")
        if "att" in path.stem:
            yield pytest.param(path, 84, id=f"{path.stem}-84")


@pytest.mark.parametrize(("path", "context"), list(_model_cases()))
def test_model_file_trains_and_embeds(path, context):
    module = load_model_module(path)
    model = module.build_model({**CONFIG, "SPEC_CONTEXT": context})
    assert isinstance(model, TwoBranchModel)
    batch = 8
    rng = np.random.default_rng(0)
    sheets = rng.integers(0, 256, (batch, 160, 200), dtype=np.uint8)
    specs = rng.random((batch, 92, context), dtype=np.float32)
    x_sheet, x_spec = model.prepare_sheet(sheets), model.prepare_spec(specs)
    assert x_sheet.shape == (batch, 1, *module.SPEC.sheet_shape)
    assert x_spec.shape == (batch, 1, 92, context)

    model.train()
    optimizer = model.make_optimizer()
    z_sheet, z_audio = model(x_sheet, x_spec)
    for z in (z_sheet, z_audio):
        assert z.shape == (batch, 32) and torch.isfinite(z).all()
        torch.testing.assert_close(z.norm(dim=1), torch.ones(batch))
    loss = model.loss(z_sheet, z_audio)
    loss.backward()
    assert torch.isfinite(loss)
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)
    optimizer.step()
    copy.deepcopy(model)             # possible although the projection kept the batch's graph
    if module.SPEC.projection == "cca":
        assert not torch.allclose(model.projection.U, torch.eye(32))
    assert model.projection.mean1.abs().sum() > 0

    model.eval()
    with torch.no_grad():
        e_sheet, e_audio = model(x_sheet, x_spec)
    emb_sheet = model.embed_sheet(sheets, batch_size=5)
    emb_audio = model.embed_spec(specs)
    assert not model.training
    torch.testing.assert_close(emb_sheet, e_sheet, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(emb_audio, e_audio, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(emb_sheet.norm(dim=1), torch.ones(batch))
    # one view alone, one item alone: same code as within the batch
    torch.testing.assert_close(model.embed_spec(x_spec[4:5], prepared=True), e_audio[4:5],
                               atol=1e-5, rtol=1e-4)
    if module.SPEC.attention:
        h, weights = model.encode_spec(x_spec, return_attention=True)
        assert h.shape == (batch, 32) and weights.shape == (batch, context)


def test_model_config_errors():
    module = load_model_module(REPO / "models" / "demo.py")
    with pytest.raises(AsrError, match="SPEC_CONTEXT"):
        module.build_model({k: v for k, v in CONFIG.items() if k != "SPEC_CONTEXT"})


def test_load_model_module_errors(tmp_path):
    with pytest.raises(AsrError) as err:
        load_model_module("models/nope.py")
    assert "models/nope.py" in str(err.value) and "\n" not in str(err.value)
    empty = tmp_path / "empty.py"
    empty.write_text("X = 1\n")
    with pytest.raises(AsrError, match="SPEC") as err:
        load_model_module(empty)
    assert str(empty) in str(err.value)
    broken = tmp_path / "broken.py"
    broken.write_text("from audio_sheet_retrieval.nn import ModelSpec\nSPEC = ModelSpec(head='x')\n")
    with pytest.raises(AsrError, match="failed to import") as err:
        load_model_module(broken)
    assert "\n" not in str(err.value)
    only_spec = tmp_path / "only_spec.py"
    only_spec.write_text("from audio_sheet_retrieval.nn import ModelSpec\nSPEC = ModelSpec()\n")
    assert isinstance(load_model_module(only_spec).build_model(CONFIG), TwoBranchModel)
    assert model_name("models/demo.py") == "demo"
