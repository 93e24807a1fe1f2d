"""The EM core: operators against dense matrices, each M-step block against its minimisation
problem, HQS against the exact M-step solution, and em_step against an independent numpy version."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ddfm_edu import em, gsm, operators

# ---------------------------------------------------------------- independent dense references


def dense_grad(H: int, W: int) -> np.ndarray:
    """(2HW, HW) matrix of periodic forward differences, rows: all horizontal then all vertical,
    pixels flattened row-major (as torch's reshape of (H, W))."""
    n = H * W
    dx, dy = np.zeros((n, n)), np.zeros((n, n))
    for r in range(H):
        for c in range(W):
            p = r * W + c
            dx[p, p], dx[p, r * W + (c + 1) % W] = -1.0, 1.0
            dy[p, p], dy[p, ((r + 1) % H) * W + c] = -1.0, 1.0
    return np.vstack([dx, dy])


def numpy_paper_em_step(f0, i, v, m_bar, n_bar, k, u, gamma, rho, psi, eta, floor):
    """The paper's EM step written from docs/method.md sections 3-4 in float64 numpy, with full
    complex FFTs and closed-form transfer functions (no code shared with ddfm_edu.em)."""
    x, y = f0 - v, i - v
    g, p = gamma[:, None, None, None], rho[:, None, None, None]
    r_m, r_n = np.sqrt((y - x) ** 2 + floor**2), np.sqrt(x**2 + floor**2)
    m_bar, n_bar = np.sqrt(2 / g) / r_m, np.sqrt(2 / p) / r_n
    gamma = np.mean(r_m * np.sqrt(g / 2) + g / 2, axis=(1, 2, 3))
    rho = np.mean(r_n * np.sqrt(p / 2) + p / 2, axis=(1, 2, 3))
    H, W = x.shape[-2:]
    dx_hat = np.exp(2j * np.pi * np.arange(W) / W)[None, :] - 1
    dy_hat = np.exp(2j * np.pi * np.arange(H) / H)[:, None] - 1
    fft2 = np.fft.fft2
    k_hat = (fft2(x) + np.conj(dx_hat) * fft2(u[:, :1]) + np.conj(dy_hat) * fft2(u[:, 1:])) / (
        1 + np.abs(dx_hat) ** 2 + np.abs(dy_hat) ** 2
    )
    k = np.real(np.fft.ifft2(k_hat))
    grad_k = np.concatenate([np.roll(k, -1, axis=-1) - k, np.roll(k, -1, axis=-2) - k], axis=1)
    u = eta / (2 * psi + eta) * grad_k
    x = (2 * m_bar * y + eta * k) / (2 * m_bar + 2 * n_bar + eta)
    return x + v, (m_bar, n_bar, k, u, gamma, rho)


def images(B=2, H=12, W=10, seed=0, dtype=torch.float32, device="cpu"):
    g = torch.Generator().manual_seed(seed)
    t = [torch.rand(B, 1, H, W, generator=g, dtype=torch.float64) * 2 - 1 for _ in range(3)]
    return [x.to(device=device, dtype=dtype) for x in t]


# ---------------------------------------------------------------- operators


def test_grad_and_adjoint_match_dense_matrices():
    H, W = 5, 7
    G = dense_grad(H, W)
    x = torch.randn(2, 1, H, W, dtype=torch.float64)
    u = torch.randn(2, 2, H, W, dtype=torch.float64)
    expected = (G @ x.reshape(2, -1).numpy().T).T.reshape(2, 2, H, W)
    np.testing.assert_allclose(operators.grad(x).numpy(), expected, atol=1e-12)
    with_autograd = operators.grad(x.clone().requires_grad_(True)).detach()  # the autograd path
    np.testing.assert_allclose(with_autograd.numpy(), expected, atol=1e-12)
    expected_adj = (G.T @ u.reshape(2, -1).numpy().T).T.reshape(2, 1, H, W)
    np.testing.assert_allclose(operators.grad_adjoint(u).numpy(), expected_adj, atol=1e-12)
    torch.testing.assert_close(operators.grad_t_grad(x), operators.grad_adjoint(operators.grad(x)))


def test_transfer_functions_closed_form_and_cache():
    H, W = 6, 9
    dx_hat, dy_hat = operators.transfer_functions(H, W, torch.device("cpu"), torch.float64)
    q, p = np.arange(W // 2 + 1), np.arange(H)
    np.testing.assert_allclose(
        dx_hat.numpy(), np.broadcast_to(np.exp(2j * np.pi * q / W) - 1, (H, W // 2 + 1)), atol=1e-12
    )
    np.testing.assert_allclose(
        dy_hat.numpy(),
        np.broadcast_to((np.exp(2j * np.pi * p / H) - 1)[:, None], (H, W // 2 + 1)),
        atol=1e-12,
    )
    a = operators.inverse_symbol_eye_plus_gtg(H, W, torch.device("cpu"), torch.float32)
    b = operators.inverse_symbol_eye_plus_gtg(H, W, torch.device("cpu"), torch.float32)
    assert a is b  # computed once per (H, W, device, dtype)


@pytest.mark.parametrize("H,W", [(6, 8), (5, 7)])  # odd sizes exercise irfft2's output size
def test_k_update_solves_its_linear_system_densely(H, W):
    G = dense_grad(H, W)
    x = torch.randn(2, 1, H, W, dtype=torch.float64)
    u = torch.randn(2, 2, H, W, dtype=torch.float64)
    k = em.k_update(x, u)
    A = np.eye(H * W) + G.T @ G
    rhs = x.reshape(2, -1).numpy().T + G.T @ u.reshape(2, -1).numpy().T
    expected = np.linalg.solve(A, rhs).T.reshape(2, 1, H, W)
    np.testing.assert_allclose(k.numpy(), expected, atol=1e-10)


# ---------------------------------------------------------------- E-step


def test_e_step_matches_proposition_2_with_floor():
    x, y, _ = images(B=2, H=4, W=5, dtype=torch.float64)
    x[0, 0, 0, 0] = 0.0  # |x| = 0 -> floored
    y[1, 0, 1, 1] = x[1, 0, 1, 1]  # |y - x| = 0 -> floored
    gamma, rho = torch.tensor([0.5, 2.0], dtype=torch.float64), torch.tensor([1.5, 0.2], dtype=torch.float64)
    m_bar, n_bar, gamma_new, rho_new = em.e_step(x, y, gamma, rho)
    floor = em.RESIDUAL_FLOOR
    r_m = np.sqrt((y - x).numpy() ** 2 + floor**2)
    r_n = np.sqrt(x.numpy() ** 2 + floor**2)
    e_inv_m, e_m = gsm.posterior_moments(r_m, gamma.numpy()[:, None, None, None])
    e_inv_n, e_n = gsm.posterior_moments(r_n, rho.numpy()[:, None, None, None])
    np.testing.assert_allclose(m_bar.numpy(), e_inv_m, rtol=1e-12)
    np.testing.assert_allclose(n_bar.numpy(), e_inv_n, rtol=1e-12)
    np.testing.assert_allclose(gamma_new.numpy(), e_m.mean(axis=(1, 2, 3)), rtol=1e-12)
    np.testing.assert_allclose(rho_new.numpy(), e_n.mean(axis=(1, 2, 3)), rtol=1e-12)
    assert n_bar[0, 0, 0, 0] == pytest.approx(np.sqrt(2 / 1.5) / floor)
    assert torch.isfinite(m_bar).all() and torch.isfinite(n_bar).all()


# ---------------------------------------------------------------- M-step blocks


def _weights(H=6, W=5, seed=3):
    g = torch.Generator().manual_seed(seed)
    y = torch.randn(2, 1, H, W, generator=g, dtype=torch.float64)
    m_bar = 0.2 + 3 * torch.rand(2, 1, H, W, generator=g, dtype=torch.float64)
    n_bar = 0.2 + 3 * torch.rand(2, 1, H, W, generator=g, dtype=torch.float64)
    return y, m_bar, n_bar


@pytest.mark.parametrize("block", ["k", "u", "x"])
def test_each_block_minimises_the_hqs_objective(block):
    """Gradient of J(x, k, u) w.r.t. the updated block is zero, and perturbations increase J."""
    y, m_bar, n_bar = _weights()
    psi, eta = 0.5, 0.3
    g = torch.Generator().manual_seed(4)
    x, k = torch.randn(2, 2, 1, 6, 5, generator=g, dtype=torch.float64)
    u = torch.randn(2, 2, 6, 5, generator=g, dtype=torch.float64)
    if block == "k":
        k = em.k_update(x, u)
    elif block == "u":
        u = em.u_update(k, psi, eta)
    else:
        x = em.x_update(y, m_bar, n_bar, k, eta)
    variables = {"x": x, "k": k, "u": u}
    target = variables[block].clone().requires_grad_(True)
    variables[block] = target
    J = em.hqs_objective(variables["x"], variables["k"], variables["u"], y, m_bar, n_bar, psi, eta)
    (gradient,) = torch.autograd.grad(J.sum(), target)
    assert gradient.abs().max() < 1e-10
    for _ in range(3):
        variables[block] = target.detach() + 1e-3 * torch.randn(
            target.shape, generator=g, dtype=torch.float64
        )
        J2 = em.hqs_objective(variables["x"], variables["k"], variables["u"], y, m_bar, n_bar, psi, eta)
        assert (J2 > J.detach()).all()


def test_hqs_passes_decrease_the_objective_monotonically():
    y, m_bar, n_bar = _weights()
    psi, eta = 0.5, 1.0
    x, u = y.clone(), torch.zeros(2, 2, 6, 5, dtype=torch.float64)
    k = torch.zeros_like(x)
    values = [em.hqs_objective(x, k, u, y, m_bar, n_bar, psi, eta)]
    for _ in range(20):
        k, u, x = em.m_step(x, y, m_bar, n_bar, u, psi, eta)
        values.append(em.hqs_objective(x, k, u, y, m_bar, n_bar, psi, eta))
    diffs = torch.stack(values).diff(dim=0)
    assert (diffs <= 1e-12).all() and (diffs[0] < -1e-3).all()


def dense_m_step_minimiser(y, m_bar, n_bar, psi):
    H, W = y.shape[-2:]
    G = dense_grad(H, W)
    out = []
    for b in range(y.shape[0]):
        mb, nb, yb = (t[b].reshape(-1).numpy() for t in (m_bar, n_bar, y))
        out.append(np.linalg.solve(np.diag(mb + nb) + psi * G.T @ G, mb * yb).reshape(1, H, W))
    return np.stack(out)


def test_conjugate_gradients_solve_the_m_step_exactly():
    y, m_bar, n_bar = _weights(8, 8)
    m_bar[0, 0, 2, 3] = 1e3  # the spread of weights a floored residual produces
    x = em.solve_m_step(y, m_bar, n_bar, 0.5, tol=1e-12)
    np.testing.assert_allclose(x.numpy(), dense_m_step_minimiser(y, m_bar, n_bar, 0.5), atol=1e-9)
    assert (
        em.m_step_objective(x, y, m_bar, n_bar, 0.5) <= em.m_step_objective(x + 1e-3, y, m_bar, n_bar, 0.5)
    ).all()


def dense_hqs_minimiser(y, m_bar, n_bar, psi, eta):
    """x of the joint minimiser of J(x, k, u), by a dense solve of its normal equations."""
    H, W = y.shape[-2:]
    n, G = H * W, dense_grad(H, W)
    I_n, I_2n = np.eye(n), np.eye(2 * n)
    out = []
    for b in range(y.shape[0]):
        mb, nb, yb = (t[b].reshape(-1).numpy() for t in (m_bar, n_bar, y))
        A = np.block([
            [np.diag(2 * mb + 2 * nb) + eta * I_n, -eta * I_n, np.zeros((n, 2 * n))],
            [-eta * I_n, eta * (I_n + G.T @ G), -eta * G.T],
            [np.zeros((2 * n, n)), -eta * G, (2 * psi + eta) * I_2n],
        ])  # fmt: skip
        rhs = np.concatenate([2 * mb * yb, np.zeros(3 * n)])
        out.append(np.linalg.solve(A, rhs)[:n].reshape(1, H, W))
    return np.stack(out)


def test_repeated_hqs_m_steps_converge_to_the_joint_minimiser():
    """With fixed weights, repeated k, u, x passes converge to the minimiser of J(x, k, u)."""
    y, m_bar, n_bar = _weights(8, 8)
    psi, eta = 0.5, 1.0
    x, u = y.clone(), torch.zeros(2, 2, 8, 8, dtype=torch.float64)
    for _ in range(40):
        _, u, x = em.m_step(x, y, m_bar, n_bar, u, psi, eta)
    np.testing.assert_allclose(x.numpy(), dense_hqs_minimiser(y, m_bar, n_bar, psi, eta), atol=1e-10)


def test_hqs_minimiser_approaches_the_exact_m_step_solution_as_eta_grows():
    """The HQS limit differs from the minimiser of J(x) by O(psi/eta): eta trades accuracy
    (large eta) for speed (small eta: the x-update barely feels k)."""
    y, m_bar, n_bar = _weights(8, 8)
    psi = 0.5
    exact = em.solve_m_step(y, m_bar, n_bar, psi, tol=1e-12).numpy()
    errors = [np.abs(dense_hqs_minimiser(y, m_bar, n_bar, psi, eta) - exact).max() for eta in (1e1, 1e2, 1e3)]
    assert errors[0] > 1e-3
    assert errors[1] / errors[0] == pytest.approx(0.1, rel=0.3)
    assert errors[2] / errors[1] == pytest.approx(0.1, rel=0.1)


# ---------------------------------------------------------------- em_step, em_fuse


def test_em_step_paper_matches_independent_numpy_implementation():
    f0, i, v = images(B=2, H=16, W=12)
    f0[0, 0, :2] = v[0, 0, :2]  # x = 0: the floor is active
    psi, eta = 0.5, 0.05
    state = None
    ref_state = (None, None, None, np.zeros((2, 2, 16, 12)), np.ones(2), np.ones(2))
    f = f0
    f_ref = f0.double().numpy()
    i64, v64 = i.double().numpy(), v.double().numpy()
    for _ in range(4):  # carried state over several steps
        f, state = em.em_step(f, i, v, state, psi=psi, eta=eta)
        f_ref, ref_state = numpy_paper_em_step(
            f_ref, i64, v64, *ref_state, psi=psi, eta=eta, floor=em.RESIDUAL_FLOOR
        )
        np.testing.assert_allclose(f.numpy(), f_ref, atol=1e-4)
    names = ("m_bar", "n_bar", "k", "u", "gamma", "rho")
    for name, ref in zip(names, ref_state, strict=True):
        np.testing.assert_allclose(getattr(state, name).numpy(), ref, rtol=1e-3, atol=1e-4)


@pytest.mark.parametrize("variant", em.VARIANTS)
def test_batch_equals_images_one_by_one(variant):
    f0, i, v = images(B=3, H=10, W=14, seed=5)
    f, state = f0, None
    for _ in range(3):
        f, state = em.em_step(f, i, v, state, variant=variant)
    for b in range(3):
        fb, sb = f0[b : b + 1], None
        for _ in range(3):
            fb, sb = em.em_step(fb, i[b : b + 1], v[b : b + 1], sb, variant=variant)
        torch.testing.assert_close(f[b : b + 1], fb, rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(state.gamma[b : b + 1], sb.gamma)
        torch.testing.assert_close(state.u[b : b + 1], sb.u, rtol=1e-5, atol=1e-6)


def test_em_step_unchecked_path_equals_checked_and_keeps_dtype():
    f0, i, v = images(dtype=torch.float64)
    a, sa = em.em_step(f0, i, v)
    b, sb = em.em_step(f0, i, v, em.initial_state(i), check=False)
    torch.testing.assert_close(a, b)
    assert a.dtype == torch.float64 and sa.gamma.dtype == torch.float64 and sa.u.shape == (2, 2, 12, 10)


@pytest.mark.parametrize("variant", em.VARIANTS)
def test_em_fuse_trace(variant):
    _, i, v = images(B=2, H=8, W=9, seed=6)
    f_init = 0.3 * i + 0.7 * v
    f, trace = em.em_fuse(i, v, iters=5, f_init=f_init, record=True, variant=variant)
    assert len(trace) == 6 and trace.u.shape == (6, 2, 2, 8, 9) and trace.gamma.shape == (6, 2)
    torch.testing.assert_close(trace.f[0], f_init)
    torch.testing.assert_close(trace.x[0], f_init - v)
    assert (trace.m_bar[0] == 1).all() and (trace.u[0] == 0).all() and (trace.rho[0] == 1).all()
    torch.testing.assert_close(trace.f[-1], f)
    # the trace is exactly what repeated em_step calls give
    g, state = f_init, None
    for j in range(1, 6):
        g, state = em.em_step(g, i, v, state, variant=variant)
        torch.testing.assert_close(trace.f[j], g)
        torch.testing.assert_close(trace.state(j).n_bar, state.n_bar)
        torch.testing.assert_close(trace.rho[j], state.rho)
    if variant != "released":  # the release's X is i - f
        torch.testing.assert_close(trace.f[3], trace.x[3] + v)
    else:
        torch.testing.assert_close(trace.f[3], i - trace.x[3])
    f2, none = em.em_fuse(i, v, iters=5, f_init=f_init, variant=variant)
    assert none is None
    torch.testing.assert_close(f2, f)


def test_em_fuse_default_start_is_the_mean_and_a_fixed_point_of_the_paper_em():
    _, i, v = images(B=1, H=16, W=16, seed=7)
    f, trace = em.em_fuse(i, v, iters=10, eta=1e-6, record=True)
    torch.testing.assert_close(trace.f[0], 0.5 * (i + v))
    torch.testing.assert_close(f, 0.5 * (i + v), atol=1e-4, rtol=0)
    # from a start off the middle, EM moves: toward the source whose residual scale is smaller
    f_off, _ = em.em_fuse(i, v, iters=10, eta=1e-6, f_init=0.8 * i + 0.2 * v)
    assert (f_off - 0.5 * (i + v)).abs().mean() > 0.05


# ---------------------------------------------------------------- argument checks


def test_bad_arguments_raise_value_errors_naming_the_argument():
    f0, i, v = images()
    with pytest.raises(ValueError, match="v has shape"):
        em.em_step(f0, i, v[:, :, :5])
    with pytest.raises(ValueError, match="f0 contains NaN"):
        em.em_step(torch.full_like(f0, float("nan")), i, v)
    with pytest.raises(ValueError, match="i has dtype"):
        em.em_step(f0, i.double(), v)
    with pytest.raises(ValueError, match="variant"):
        em.em_step(f0, i, v, variant="paper2")
    with pytest.raises(ValueError, match="psi"):
        em.em_step(f0, i, v, psi=0.0)
    with pytest.raises(ValueError, match="eta"):
        em.em_step(f0, i, v, eta=-1e-3)
    with pytest.raises(ValueError, match="f0 must be a torch.Tensor"):
        em.em_step(f0.numpy(), i, v)
    state = em.initial_state(i)
    state.u = state.u[:, :1]
    with pytest.raises(ValueError, match="state.u"):
        em.em_step(f0, i, v, state)
    state = em.initial_state(i)
    state.gamma = state.gamma[:1]  # a carried state is checked structurally (its values are EM's own)
    with pytest.raises(ValueError, match="state.gamma"):
        em.em_step(f0, i, v, state)
    with pytest.raises(ValueError, match=r"i has values up to .* the \[-1, 1\] scale"):
        em.em_step(f0, i * 255, v)  # the 0..255 scale by mistake
    with pytest.raises(ValueError, match="float16: this needs float32 or float64"):
        em.em_step(f0.half(), i.half(), v.half())
    with pytest.raises(ValueError, match="f0 is empty"):
        em.em_step(f0[..., :0], i[..., :0], v[..., :0])
    with pytest.raises(ValueError, match="i contains NaN or infinite"):
        em.em_fuse(torch.full_like(i, 1e30) * 1e30, v)
    with pytest.raises(ValueError, match="iters"):
        em.em_fuse(i, v, iters=0)
    with pytest.raises(ValueError, match="f_init has shape"):
        em.em_fuse(i, v, f_init=f0[:1])
    with pytest.raises(ValueError, match="psi"):
        em.solve_m_step(i, i.abs(), i.abs(), psi=-1.0)


# ---------------------------------------------------------------- CUDA


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize("variant", em.VARIANTS)
def test_cuda_matches_cpu(variant):
    f0, i, v = images(B=2, H=64, W=48)
    f_cpu, s_cpu = em.em_fuse(i, v, iters=3, f_init=f0, variant=variant)
    f_gpu, s_gpu = em.em_fuse(i.cuda(), v.cuda(), iters=3, f_init=f0.cuda(), variant=variant)
    assert f_gpu.device.type == "cuda"
    torch.testing.assert_close(f_gpu.cpu(), f_cpu, rtol=1e-4, atol=1e-4)
    f1, state = em.em_step(f0.cuda(), i.cuda(), v.cuda(), variant=variant)
    assert state.u.device.type == "cuda" and state.gamma.device.type == "cuda"


@pytest.mark.parametrize("phi", [3.0, 1.0 / 3.0])
def test_fixed_phi_minimises_the_weighted_l1_fusion_loss(phi):
    """With the scales held at rho = gamma / phi^2, EM is IRLS for ||f - i||_1 + phi ||f - v||_1,
    whose per-pixel minimiser is v for phi > 1 and i for phi < 1 (the smoothness term is tiny)."""
    g = torch.Generator().manual_seed(5)
    i = torch.rand(2, 1, 12, 10, generator=g) * 2 - 1
    v = torch.rand(2, 1, 12, 10, generator=g) * 2 - 1
    f, trace = em.em_fuse(i, v, iters=40, phi=phi, record=True)
    target = v if phi > 1 else i
    assert (f - target).abs().max() < 0.02
    assert torch.allclose(trace.gamma, torch.ones_like(trace.gamma))
    assert torch.allclose(trace.rho, torch.full_like(trace.rho, 1.0 / phi**2))


def test_phi_is_refused_for_the_released_variant_and_when_not_positive():
    i = torch.zeros(1, 1, 4, 4)
    with pytest.raises(ValueError, match="phi"):
        em.em_fuse(i, i, iters=1, phi=2.0, variant="released")
    with pytest.raises(ValueError, match="phi"):
        em.em_step(i, i, i, phi=-1.0)


def test_em_config_is_validated_once_when_made():
    assert em.EMConfig() == em.EMConfig(psi=0.5, eta=1e-3, variant="paper", phi=None)
    for bad, name in (({"psi": float("inf")}, "psi"), ({"eta": 0.0}, "eta"), ({"variant": "x"}, "variant"),
                      ({"phi": -1.0}, "phi"), ({"variant": "released", "phi": 1.0}, "phi")):  # fmt: skip
        with pytest.raises(ValueError, match=name):
            em.EMConfig(**bad)
    assert em.STATE_FIELDS == ("m_bar", "n_bar", "k", "u", "gamma", "rho")


def test_gradients_flow_through_an_em_step_as_autograd_checks_them():
    """Autograd through the E-step and the HQS blocks (float64), checked against finite differences."""
    f0, i, v = (t.double() for t in images(B=1, H=6, W=5, seed=3))
    state = em.em_step(f0, i, v)[1]  # a non-initial state: real weights and scales
    f0.requires_grad_(True)

    def f_hat(f0):
        return em.em_step(f0, i, v, state)[0]

    assert torch.autograd.gradcheck(f_hat, (f0,), eps=1e-6, atol=1e-5)
    f_plain = em.em_step(f0.detach(), i, v, state)[0]
    torch.testing.assert_close(f_hat(f0).detach(), f_plain)  # the autograd path computes the same
