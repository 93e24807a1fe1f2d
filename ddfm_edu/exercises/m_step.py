"""Checkers of notebook 03 (the M-step by half-quadratic splitting): the periodic gradient,
the k-update solved in Fourier space, the closed-form x-update, and a whole EM step assembled from
the E-step and the three HQS blocks."""

from __future__ import annotations

from collections.abc import Callable

import torch

from ddfm_edu import em, operators
from ddfm_edu.exercises.harness import Case, ExerciseError, check, random_image, random_rgb


def _k_update_without_conj(x: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
    """The k-update with D_hat fft2(u) in place of conj(D_hat) fft2(u) (grad instead of grad^T)."""
    H, W = x.shape[-2:]
    dx_hat = torch.exp(2j * torch.pi * torch.arange(W, dtype=torch.float64) / W) - 1
    dy_hat = (torch.exp(2j * torch.pi * torch.arange(H, dtype=torch.float64) / H) - 1)[:, None]
    fft2 = torch.fft.fft2
    numerator = fft2(x) + dx_hat * fft2(u[:, 0:1]) + dy_hat * fft2(u[:, 1:2])
    return torch.fft.ifft2(numerator / (1 + dx_hat.abs() ** 2 + dy_hat.abs() ** 2)).real


def check_grad(fn: Callable) -> bool:
    """fn(x) = periodic forward differences, (B, 1, H, W) -> (B, 2, H, W): channel 0 horizontal
    x[r, c+1] - x[r, c], channel 1 vertical x[r+1, c] - x[r, c], indices wrapping around."""
    cases = [
        Case("a 5x7 image", (random_image(1, 1, 5, 7, seed=0),), "x of shape (1, 1, 5, 7)"),
        Case("a batch", (random_image(2, 1, 4, 3, seed=1),), "x of shape (2, 1, 4, 3)"),
    ]
    hints = [
        (lambda x: operators.grad(x).flip(1), "channel 0 is horizontal (along W), channel 1 vertical"),
        (lambda x: -operators.grad(x), "forward differences are x[next] - x[this], not the reverse"),
        (
            lambda x: torch.cat(
                [torch.diff(x, dim=-1, append=x[..., -1:]), torch.diff(x, dim=-2, append=x[..., -1:, :])], 1
            ),  # fmt: skip
            "the boundary is periodic: the last column's difference is x[r, 0] - x[r, W-1]",
        ),
    ]
    return check("check_grad", fn, operators.grad, cases, hints, atol=1e-9)


def check_k_update(fn: Callable) -> bool:
    """fn(x, u) = k solving (I + grad^T grad) k = x + grad^T u (periodic grad), via the FFT:
    x (B, 1, H, W), u (B, 2, H, W) with channels (horizontal, vertical)."""
    x1, x2 = random_image(1, 1, 6, 8, seed=2), random_image(2, 1, 5, 7, seed=3)
    cases = [
        Case("u = 0", (x1, torch.zeros(1, 2, 6, 8, dtype=torch.float64)), "a 6x8 x and u = 0"),
        Case("a nonzero u", (x1, random_image(1, 2, 6, 8, seed=4)), "a 6x8 x and a random u"),
        Case("an odd-sized batch", (x2, random_image(2, 2, 5, 7, seed=5)), "x of shape (2, 1, 5, 7)"),
    ]
    hints = [
        (lambda x, u: x, "k must solve (I + grad^T grad) k = x + grad^T u, not equal x"),
        (lambda x, u: em.k_update(x, -u), "the sign of the u term: + conj(D_hat) fft2(u)"),
        (lambda x, u: em.k_update(x, u.flip(1)), "u's channel 0 is horizontal, channel 1 vertical"),
        (
            _k_update_without_conj,
            "the u term needs the complex CONJUGATE, conj(D_hat) fft2(u): it is fft2 of grad^T u (the "
            "adjoint), and D_hat without conj is fft2 of grad u",
        ),
        (
            lambda x, u: x + operators.grad_adjoint(u),
            "that is the right-hand side; divide by 1 + |Dx_hat|^2 + |Dy_hat|^2 in Fourier space",
        ),
    ]
    return check("check_k_update", fn, em.k_update, cases, hints, atol=1e-8)


def check_x_update(fn: Callable) -> bool:
    """fn(y, m_bar, n_bar, k, eta) = (2 m_bar y + eta k) / (2 m_bar + 2 n_bar + eta)."""
    y, k = random_image(1, 1, 4, 5, seed=6), random_image(1, 1, 4, 5, seed=7)
    m_bar = 0.1 + random_image(1, 1, 4, 5, seed=8).abs()
    n_bar = 0.1 + random_image(1, 1, 4, 5, seed=9).abs()
    cases = [
        Case("eta = 0.5", (y, m_bar, n_bar, k, 0.5), "random y, k, positive m_bar, n_bar, eta = 0.5"),
        Case("a large eta", (y, m_bar, n_bar, k, 50.0), "the same, eta = 50"),
        Case("n_bar = 0", (y, m_bar, 0 * n_bar, k, 0.5), "n_bar = 0, eta = 0.5"),
    ]
    hints = [
        (
            lambda y, m, n, k, eta: (m * y + eta * k) / (m + n + eta),
            "the factors 2 on m_bar and n_bar are missing (the derivative of a square is 2 (.))",
        ),
        (
            lambda y, m, n, k, eta: (2 * n * y + eta * k) / (2 * m + 2 * n + eta),
            "m_bar, the weight of (x - y)^2, multiplies y in the numerator",
        ),
        (
            lambda y, m, n, k, eta: (2 * m * y + eta * k) / (2 * m + 2 * n),
            "the denominator needs + eta (from (eta/2) ||k - x||^2)",
        ),
    ]
    return check("check_x_update", fn, em.x_update, cases, hints, atol=1e-9)


def _em_step_with(
    f0: torch.Tensor,
    i: torch.Tensor,
    v: torch.Tensor,
    state: em.EMState,
    psi: float,
    eta: float,
    *,
    swap: bool = False,
    carry_u: bool = True,
    new_scales: bool = True,
    k_first: bool = True,
    add_v: bool = True,
) -> tuple[torch.Tensor, em.EMState]:
    """One paper EM step from the library's blocks, each step replaceable by a typical mistake."""
    x, y = (f0 - i, v - i) if swap else (f0 - v, i - v)
    m_bar, n_bar, gamma, rho = em.e_step(x, y, state.gamma, state.rho)
    u = state.u if carry_u else torch.zeros_like(state.u)
    if k_first:
        k = em.k_update(x, u)
        u = em.u_update(k, psi, eta)
        x = em.x_update(y, m_bar, n_bar, k, eta)
    else:
        x = em.x_update(y, m_bar, n_bar, state.k, eta)
        k = em.k_update(x, u)
        u = em.u_update(k, psi, eta)
    if not new_scales:
        gamma, rho = state.gamma, state.rho
    f_hat = x + (i if swap else v) if add_v else x
    return f_hat, em.EMState(m_bar=m_bar, n_bar=n_bar, k=k, u=u, gamma=gamma, rho=rho)


EM_STEP_PARTS = ("f_hat", *em.STATE_FIELDS)


def _unpacked(fn: Callable) -> Callable:
    """fn's (f_hat, state) as one tuple (f_hat, m_bar, n_bar, k, u, gamma, rho); None stays None."""

    def unpacked(*args: object) -> tuple | None:
        result = fn(*args)
        if result is None:
            return None
        if not (isinstance(result, tuple) and len(result) == 2 and isinstance(result[1], em.EMState)):
            raise ExerciseError(
                f"check_em_step: return (f_hat, state) with state an em.EMState, got {type(result).__name__}"
            )
        f_hat, state = result
        return (f_hat, *(getattr(state, name) for name in em.STATE_FIELDS))

    return unpacked


def check_em_step(fn: Callable) -> bool:
    r"""fn(f0, i, v, state, psi, eta) = (f_hat, new_state): one EM step of the paper (`em.em_step`)
    from the estimate f0 (B, 1, H, W) and the carried state (an em.EMState):
        x = f0 - v, y = i - v;  E-step (m_bar, n_bar, gamma, rho with the OLD scales);
        k = k_update(x, state.u);  u = u_update(k, psi, eta);  x = x_update(y, m_bar, n_bar, k, eta);
        f_hat = x + v;  new_state = EMState(m_bar, n_bar, k, u, gamma_new, rho_new)."""
    f0, i, v = (random_rgb(1, 1, 6, 8, seed=s) for s in (30, 31, 32))
    fb, ib, vb = (random_rgb(2, 1, 5, 7, seed=s) for s in (33, 34, 35))
    carried = em.initial_state(i)
    for _ in range(2):
        _, carried = em.em_step(f0, i, v, carried, psi=0.5, eta=2.0)
    carried_b = em.initial_state(ib)
    _, carried_b = em.em_step(fb, ib, vb, carried_b, psi=0.3, eta=1.0)
    cases = [
        Case("the initial state", (f0, i, v, em.initial_state(i), 0.5, 0.5),
             "random f0, i, v (1, 1, 6, 8), em.initial_state, psi = 0.5, eta = 0.5"),
        Case("a carried state", (f0, i, v, carried, 0.5, 2.0),
             "the same images, the state after two EM steps, psi = 0.5, eta = 2"),
        Case("a batch of two", (fb, ib, vb, carried_b, 0.3, 1.0),
             "f0, i, v (2, 1, 5, 7), a carried state, psi = 0.3, eta = 1"),
    ]  # fmt: skip

    def wrong(**mistake: bool) -> Callable:
        return _unpacked(lambda *args: _em_step_with(*args, **mistake))

    hints = [
        (wrong(add_v=False), "return f_hat = x + v: the M-step works on x = f - v"),
        (wrong(swap=True), "x = f0 - v and y = i - v: the visible image v is the reference"),
        (wrong(carry_u=False), "carry the state: the k-update starts from the previous u (state.u)"),
        (wrong(k_first=False), "the HQS order is k, u, x: the x-update uses the NEW k"),
        (wrong(new_scales=False), "store the E-step's NEW gamma and rho in the returned state"),
    ]
    reference = _unpacked(lambda f0, i, v, state, psi, eta: em.em_step(f0, i, v, state, psi=psi, eta=eta))
    return check(
        "check_em_step", _unpacked(fn), reference, cases, hints, rtol=1e-6, atol=1e-9, parts=EM_STEP_PARTS
    )
