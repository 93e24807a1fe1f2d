r"""The EM rectification of DDFM: E-step (Proposition 2) and M-step by half-quadratic splitting.

Notation (docs/method.md sections 1-4): sources i, v and an estimate f, all (B, 1, H, W) in [-1, 1];
x = f - v, y = i - v. Per pixel, y | x, m ~ N(x, m), m ~ EXP(gamma) and x | n ~ N(0, n),
n ~ EXP(rho), plus the smoothness penalty psi ||grad x||^2.

One EM step from an estimate f0 (`em_step`):
    E-step   m_bar = E[1/m | y - x],  n_bar = E[1/n | x],
             gamma <- mean E[m | y - x],  rho <- mean E[n | x]           (per image)
    M-step   k = (I + grad^T grad)^{-1} (x + grad^T u)                    (k_update)
             u = eta / (2 psi + eta) grad k                               (u_update)
             x = (2 m_bar y + eta k) / (2 m_bar + 2 n_bar + eta)          (x_update)
    output   f_hat = x + v

The HQS blocks minimise, one at a time, J(x, k, u) = sum m_bar (x - y)^2 + sum n_bar x^2
+ psi ||u||^2 + (eta/2) (||u - grad k||^2 + ||k - x||^2) (`hqs_objective`); `solve_m_step` solves the
M-step quadratic J(x) = sum m_bar (x - y)^2 + sum n_bar x^2 + psi ||grad x||^2 exactly (conjugate
gradients), to show what HQS approaches as eta grows.

`variant="released"` runs the released code's EM function instead (ddfm_edu.released);
`variant="one-sided"` the EM of the one-sided likelihood f >= max(i, v) (ddfm_edu.remedies, notebook 11).

Settings: psi, eta, variant and phi travel together as an `EMConfig`, validated once when made.
Argument checks: `em_step`, `em_fuse` and `solve_m_step` validate their arguments (ValueError naming
the argument). The building blocks (`e_step`, `k_update`, `u_update`, `x_update`, `m_step`) do no
checks, and `em_step_unchecked` (or `em_step(..., check=False)`) skips the tensor checks too: that is
the path the DDFM sampler calls at every diffusion step (no host-device synchronisation; batched,
each image with its own gamma, rho).
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import torch

from ddfm_edu import released
from ddfm_edu.operators import conjugate_gradients, grad, grad_adjoint, grad_t_grad, solve_eye_plus_gtg
from ddfm_edu.validation import IMAGE_LIMIT, check_choice, check_images, check_integer, check_positive

VARIANTS = ("paper", "released", "one-sided")

RESIDUAL_FLOOR = 1e-3
"""Floor on |r| in the E-step: |r| is replaced by sqrt(r^2 + RESIDUAL_FLOOR^2) (a smooth floor), so
m_bar = sqrt(2/gamma) / sqrt((y - x)^2 + 1e-6), likewise n_bar. |r| can be exactly 0 (f = v gives
x = 0); the floor caps a weight at sqrt(2/gamma) 1e3 and changes |r| by less than 5e-4 elsewhere.
On the [-1, 1] scale one grey level of an 8-bit image is 2/255 ~ 7.8e-3: the floor is ~1/8 of it.
The release guards its n_bar the same way (sqrt(x^2 + 1e-6))."""


@dataclass
class EMState:
    r"""What EM carries from one step to the next (one diffusion step to the next in DDFM).

    m_bar, n_bar: (B, 1, H, W) E[1/m | y - x], E[1/n | x] from the last E-step.
    k: (B, 1, H, W) the HQS copy of x;  u: (B, 2, H, W) the HQS copy of grad k (horizontal, vertical).
    gamma, rho: (B,) the scales of the exponential priors of m and n, one per image.
    With variant="released" the fields hold the release's quantities (C, D, H, (F1, F2), tau_a,
    tau_b): the same roles, the release's conventions (ddfm_edu.released).
    """

    m_bar: torch.Tensor
    n_bar: torch.Tensor
    k: torch.Tensor
    u: torch.Tensor
    gamma: torch.Tensor
    rho: torch.Tensor


STATE_FIELDS = tuple(field.name for field in fields(EMState))


@dataclass(frozen=True)
class EMConfig:
    r"""The EM's settings, validated once when made (ValueError naming the field).

    psi: the smoothness weight (the release's lamb = 0.5); eta: the HQS penalty (its rho = 1e-3);
    variant: "paper", "released" or "one-sided" (`VARIANTS`); phi: None learns the scales gamma, rho;
    a chosen phi > 0 holds them at rho = gamma / phi^2 (paper variant only).
    """

    psi: float = 0.5
    eta: float = 1e-3
    variant: str = "paper"
    phi: float | None = None

    def __post_init__(self) -> None:
        check_positive("psi", self.psi)
        check_positive("eta", self.eta)
        check_choice("variant", self.variant, VARIANTS)
        if self.phi is not None:
            if self.variant != "paper":
                raise ValueError("phi (fixed scales) is for variant='paper' only: the release learns them, "
                                 "and the one-sided likelihood's mode does not depend on them")
            check_positive("phi", self.phi)


def initial_state(like: torch.Tensor, phi: float | None = None) -> EMState:
    """The release's initial state for images shaped like `like` (B, 1, H, W):
    m_bar = n_bar = 1, k = u = 0, gamma = rho = 1; with a chosen phi, rho = gamma / phi^2 = 1/phi^2."""
    B, _, H, W = like.shape
    ones = like.new_ones(B)
    return EMState(
        m_bar=torch.ones_like(like),
        n_bar=torch.ones_like(like),
        k=torch.zeros_like(like),
        u=like.new_zeros(B, 2, H, W),
        gamma=ones,
        rho=ones.clone() if phi is None else ones / phi**2,
    )


def e_step(
    x: torch.Tensor,
    y: torch.Tensor,
    gamma: torch.Tensor,
    rho: torch.Tensor,
    floor: float = RESIDUAL_FLOOR,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    r"""Expected precisions of the latent variances and the updated scales (Proposition 2).

        m_bar = E[1/m | y - x] = sqrt(2/gamma) / |y - x|,     n_bar = E[1/n | x] = sqrt(2/rho) / |x|
        gamma <- mean_ij E[m | y - x] = mean_ij |y - x| sqrt(gamma/2) + gamma/2
        rho   <- mean_ij E[n | x]     = mean_ij |x| sqrt(rho/2) + rho/2

    |r| stands for sqrt(r^2 + floor^2) (RESIDUAL_FLOOR) in all four. x, y: (B, 1, H, W); gamma, rho:
    (B,). Returns (m_bar, n_bar, gamma_new, rho_new); the weights use the OLD gamma and rho.
    """
    floor_sq = x.new_tensor(floor * floor)
    r_m = y - x
    differentiable = _tracks_grad(x, y, gamma, rho)
    if differentiable:  # autograd: no out= (a teaching path: grads through EM)
        abs_r_m, abs_r_n = (r_m * r_m + floor_sq).sqrt(), (x * x + floor_sq).sqrt()
    else:  # |r| by addcmul + sqrt_ (torch.hypot is several times slower on CPU), fewer buffers
        abs_r_m = torch.addcmul(floor_sq, r_m, r_m, out=r_m).sqrt_()
        abs_r_n = torch.addcmul(floor_sq, x, x).sqrt_()
    gamma_new = abs_r_m.mean(dim=(1, 2, 3)) * (gamma / 2.0).sqrt() + gamma / 2.0
    rho_new = abs_r_n.mean(dim=(1, 2, 3)) * (rho / 2.0).sqrt() + rho / 2.0
    m_scale, n_scale = (2.0 / gamma).sqrt().view(-1, 1, 1, 1), (2.0 / rho).sqrt().view(-1, 1, 1, 1)
    if differentiable:
        return m_scale / abs_r_m, n_scale / abs_r_n, gamma_new, rho_new
    # each weight overwrites its |r| (one fresh buffer per weight: fewer passes, less memory)
    m_bar = torch.div(m_scale, abs_r_m, out=abs_r_m)
    n_bar = torch.div(n_scale, abs_r_n, out=abs_r_n)
    return m_bar, n_bar, gamma_new, rho_new


def _tracks_grad(*tensors: torch.Tensor) -> bool:
    """Whether autograd records operations on any of these (then no in-place or out= writes)."""
    return torch.is_grad_enabled() and any(t.requires_grad for t in tensors)


def k_update(x: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
    r"""k-block of HQS: argmin_k ||u - grad k||^2 + ||k - x||^2, i.e. (I + grad^T grad) k = x + grad^T u:

        k = ifft2[ (fft2(x) + conj(Dx_hat) fft2(u_x) + conj(Dy_hat) fft2(u_y))
                   / (1 + |Dx_hat|^2 + |Dy_hat|^2) ]

    conj(D_hat) fft2(u) is fft2(grad^T u), so grad^T u is formed in pixel space (a stencil) and one
    rfft2 / irfft2 pair solves the system exactly (periodic boundary). x: (B,1,H,W), u: (B,2,H,W).
    """
    return solve_eye_plus_gtg(grad_adjoint(u, add_to=x))


def u_update(k: torch.Tensor, psi: float, eta: float) -> torch.Tensor:
    r"""u-block of HQS: argmin_u psi ||u||^2 + (eta/2) ||u - grad k||^2, i.e.

    u = eta / (2 psi + eta) * grad k          (B, 2, H, W)
    """
    return grad(k * (eta / (2.0 * psi + eta)))  # grad is linear: scale the smaller tensor


def x_update(
    y: torch.Tensor, m_bar: torch.Tensor, n_bar: torch.Tensor, k: torch.Tensor, eta: float
) -> torch.Tensor:
    r"""x-block of HQS: argmin_x sum m_bar (x - y)^2 + sum n_bar x^2 + (eta/2) ||k - x||^2, i.e.

    x = (2 m_bar y + eta k) / (2 m_bar + 2 n_bar + eta)          (element-wise)
    """
    # divided through by eta/2: (k + (2/eta) m_bar y) / (1 + (2/eta) (m_bar + n_bar)), fewer passes
    numerator = torch.addcmul(k, m_bar, y, value=2.0 / eta)
    weight_sum = torch.add(m_bar, n_bar)
    if weight_sum.requires_grad:  # autograd: no out=
        return numerator / (1.0 + (2.0 / eta) * weight_sum)
    denominator = torch.add(k.new_tensor(1.0), weight_sum, alpha=2.0 / eta, out=weight_sum)
    return numerator.div_(denominator)


def m_step(
    x: torch.Tensor,
    y: torch.Tensor,
    m_bar: torch.Tensor,
    n_bar: torch.Tensor,
    u: torch.Tensor,
    psi: float,
    eta: float,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One HQS pass in the order k, u, x (section 4). Returns (k, u, x)."""
    k = k_update(x, u)
    u = u_update(k, psi, eta)
    return k, u, x_update(y, m_bar, n_bar, k, eta)


def _batch_sum(t: torch.Tensor) -> torch.Tensor:
    return t.flatten(1).sum(dim=1)


def m_step_objective(
    x: torch.Tensor, y: torch.Tensor, m_bar: torch.Tensor, n_bar: torch.Tensor, psi: float
) -> torch.Tensor:
    r"""J(x) = sum m_bar (x - y)^2 + sum n_bar x^2 + psi ||grad x||^2, per image: (B,)."""
    return _batch_sum(m_bar * (x - y) ** 2 + n_bar * x**2) + psi * _batch_sum(grad(x) ** 2)


def hqs_objective(
    x: torch.Tensor,
    k: torch.Tensor,
    u: torch.Tensor,
    y: torch.Tensor,
    m_bar: torch.Tensor,
    n_bar: torch.Tensor,
    psi: float,
    eta: float,
) -> torch.Tensor:
    r"""J(x, k, u) = sum m_bar (x - y)^2 + sum n_bar x^2 + psi ||u||^2
    + (eta/2) (||u - grad k||^2 + ||k - x||^2), per image: (B,). Each HQS block minimises it."""
    data = _batch_sum(m_bar * (x - y) ** 2 + n_bar * x**2)
    split = _batch_sum((u - grad(k)) ** 2) + _batch_sum((k - x) ** 2)
    return data + psi * _batch_sum(u**2) + 0.5 * eta * split


def solve_m_step(
    y: torch.Tensor,
    m_bar: torch.Tensor,
    n_bar: torch.Tensor,
    psi: float,
    *,
    tol: float = 1e-6,
    max_iter: int = 1000,
) -> torch.Tensor:
    r"""The exact minimiser of the M-step quadratic J(x) (weights fixed), by conjugate gradients:

        (diag(m_bar + n_bar) + psi grad^T grad) x = m_bar y        (SPD, one system per image)

    Jacobi-preconditioned CG, batched; stops when every image has ||residual|| <= tol ||m_bar y||
    (one host sync per iteration: for notebooks and tests, not for the sampler's loop).
    """
    check_images(y=y, m_bar=m_bar, n_bar=n_bar)
    check_positive("psi", psi)
    check_positive("tol", tol)
    if (m_bar < 0).any() or (n_bar < 0).any():
        raise ValueError("m_bar and n_bar must be nonnegative (they are expected precisions)")
    diagonal = m_bar + n_bar

    def apply_a(p: torch.Tensor) -> torch.Tensor:
        return diagonal * p + psi * grad_t_grad(p)

    preconditioner = 1.0 / (diagonal + 4.0 * psi)  # the diagonal of grad^T grad is 4
    return conjugate_gradients(apply_a, m_bar * y, preconditioner, tol=tol, max_iter=max_iter)


def _em_step_paper(
    f0: torch.Tensor, i: torch.Tensor, v: torch.Tensor, state: EMState, config: EMConfig
) -> tuple[torch.Tensor, torch.Tensor, EMState]:
    """The paper's EM step, unchecked. Returns (f_hat, x, state). With config.phi, the scales are
    held: gamma stays, rho = gamma / phi^2 (the L1 fusion loss with that phi, docs/method.md section 2)."""
    x = f0 - v
    y = i - v
    m_bar, n_bar, gamma, rho = e_step(x, y, state.gamma, state.rho)
    if config.phi is not None:
        gamma, rho = state.gamma, state.gamma / config.phi**2
    k, u, x = m_step(x, y, m_bar, n_bar, state.u, config.psi, config.eta)
    return x + v, x, EMState(m_bar=m_bar, n_bar=n_bar, k=k, u=u, gamma=gamma, rho=rho)


def _em_step_released(
    f0: torch.Tensor, i: torch.Tensor, v: torch.Tensor, state: EMState, config: EMConfig
) -> tuple[torch.Tensor, torch.Tensor, EMState]:
    """The release's EM_onestep(f_pre=f0, I=i, V=v), unchecked. Returns (F, X, state)."""
    F, X, C, D, H, F12, tau_a, tau_b = released.em_onestep(
        f0, i, v, state.u, state.gamma, state.rho, LAMBDA=config.psi, RHO=config.eta
    )
    return F, X, EMState(m_bar=C, n_bar=D, k=H, u=F12, gamma=tau_a, rho=tau_b)


def one_sided_x_update(y: torch.Tensor, k: torch.Tensor, c: torch.Tensor, eta: float) -> torch.Tensor:
    r"""x-block of HQS for the one-sided likelihood (ddfm_edu.remedies), c = 1/gamma + 1/rho (B,):

        argmin_{x >= max(y, 0)} c sum x + (eta/2) ||k - x||^2 = max(max(y, 0), k - c/eta)

    (separable: per pixel a convex quadratic on a half-line)."""
    return torch.maximum(y.clamp(min=0.0), k - (c / eta).view(-1, 1, 1, 1))


def _em_step_one_sided(
    f0: torch.Tensor, i: torch.Tensor, v: torch.Tensor, state: EMState, config: EMConfig
) -> tuple[torch.Tensor, torch.Tensor, EMState]:
    r"""EM step of the one-sided likelihood i = f - m, v = f - n, m ~ EXP(gamma), n ~ EXP(rho)
    nonnegative (ddfm_edu.remedies), unchecked: HQS k = (I + grad^T grad)^{-1} (x0 + grad^T u),
    u = eta/(2 psi + eta) grad k, x = `one_sided_x_update`; then the maximum-likelihood scales
    gamma = mean(f - i), rho = mean(f - v) (+ RESIDUAL_FLOOR). Returns (f_hat, x, state); m_bar,
    n_bar hold the data term's weights 1/gamma, 1/rho per pixel."""
    x0, y = f0 - v, i - v
    k = k_update(x0, state.u)
    u = u_update(k, config.psi, config.eta)
    x = one_sided_x_update(y, k, 1.0 / state.gamma + 1.0 / state.rho, config.eta)
    gamma = (x - y).mean(dim=(1, 2, 3)) + RESIDUAL_FLOOR
    rho = x.mean(dim=(1, 2, 3)) + RESIDUAL_FLOOR
    m_bar = (1.0 / gamma).view(-1, 1, 1, 1).expand_as(x).clone()
    n_bar = (1.0 / rho).view(-1, 1, 1, 1).expand_as(x).clone()
    return x + v, x, EMState(m_bar=m_bar, n_bar=n_bar, k=k, u=u, gamma=gamma, rho=rho)


_STEPS = {"paper": _em_step_paper, "released": _em_step_released, "one-sided": _em_step_one_sided}


EM_DTYPES = (torch.float32, torch.float64)
"""EM computes in float32 or float64 (its FFTs have no half-precision CPU kernels, and half
precision would make the weights sqrt(2/gamma) / |r| overflow)."""


def _check_state(state: EMState, like: torch.Tensor) -> None:
    """The carried state, structurally (types, shapes, device, dtype: no value is read)."""
    if not isinstance(state, EMState):
        raise ValueError(f"state must be an EMState or None, got {type(state).__name__}")
    images = {"i": like, "state.m_bar": state.m_bar, "state.n_bar": state.n_bar, "state.k": state.k}
    check_images(values=False, **images)
    B, _, H, W = like.shape
    check_images(channels=2, values=False, **{"state.u": state.u})
    if state.u.shape != (B, 2, H, W) or state.u.device != like.device or state.u.dtype != like.dtype:
        raise ValueError(
            f"state.u must be ({B}, 2, {H}, {W}) {like.dtype} on {like.device}, got "
            f"{tuple(state.u.shape)} {state.u.dtype} on {state.u.device}"
        )
    for name in ("gamma", "rho"):
        t = getattr(state, name)
        if not isinstance(t, torch.Tensor) or t.shape != (B,):
            raise ValueError(f"state.{name} must be a tensor of shape ({B},), got {t!r}")
        if t.device != like.device or t.dtype != like.dtype:
            raise ValueError(f"state.{name} must be {like.dtype} on {like.device}")


def em_step(
    f0: torch.Tensor,
    i: torch.Tensor,
    v: torch.Tensor,
    state: EMState | None = None,
    *,
    psi: float = EMConfig.psi,
    eta: float = EMConfig.eta,
    variant: str = EMConfig.variant,
    phi: float | None = EMConfig.phi,
    check: bool = True,
) -> tuple[torch.Tensor, EMState]:
    r"""One E-step and one M-step pass (k, u, x) from the estimate f0; returns (f_hat, state).

    f0, i, v: (B, 1, H, W) on one device, one dtype. state=None starts from `initial_state`
    (the release's: m_bar = n_bar = 1, k = u = 0, gamma = rho = 1). variant="paper" is the paper's
    EM (module docstring), f_hat = x + v; variant="released" is the release's EM function given the
    same three tensors (EM_onestep(f_pre=f0, I=i, V=v), ddfm_edu.released), whose pipeline passes the
    VISIBLE image as I and the infrared as V.

    phi=None learns the scales (gamma, rho <- mean E[m], mean E[n]); a chosen phi > 0 holds them,
    rho = gamma / phi^2, which is the L1 fusion loss ||f - i||_1 + phi ||f - v||_1 (paper variant).

    Checks: the settings (an EMConfig) and the tensors' types, dtypes (float32 or float64), shapes
    and devices at every call (microseconds); the VALUES of f0, i, v (finite, on the [-1, 1] scale)
    only when state is None, i.e. where a user starts EM; a carried state only structurally. So the
    default path costs what check=False costs (benchmarks/em_step.py), and check=False skips the
    tensor checks altogether. Tensors that require grad are supported (autograd through EM).
    """
    config = EMConfig(psi, eta, variant, phi)
    if check:
        # the values of a user's images once, where EM starts; a carried state only structurally
        check_images(f0=f0, i=i, v=v, values=state is None, limit=IMAGE_LIMIT, dtypes=EM_DTYPES)
        if state is not None:
            _check_state(state, i)
    return em_step_unchecked(f0, i, v, state, config)


def em_step_unchecked(
    f0: torch.Tensor, i: torch.Tensor, v: torch.Tensor, state: EMState | None, config: EMConfig
) -> tuple[torch.Tensor, EMState]:
    """`em_step` with its settings as an EMConfig and no checks on the tensors: the per-step path
    of the DDFM sampler, which validates its inputs once at its own entry point."""
    if state is None:
        state = initial_state(i, config.phi)
    f_hat, _, state = _STEPS[config.variant](f0, i, v, state, config)
    return f_hat, state


@dataclass
class EMTrace(EMState):
    r"""Every iterate of `em_fuse`: the fields of EMState, and x and f, each stacked along a leading
    iteration axis of length iters + 1.

    Index j is the state after j EM iterations; j = 0 is the start (f = f_init, x = f_init - v and
    the initial state m_bar = n_bar = 1, k = u = 0, gamma = rho = 1), j = iters the result.
    m_bar, n_bar, k, x, f: (iters + 1, B, 1, H, W); u: (iters + 1, B, 2, H, W);
    gamma, rho: (iters + 1, B). x is the M-step's x (the release's X for variant="released").
    Read it as trace.f[j], trace.m_bar[j][b, 0], ...; `trace.state(j)` gives an EMState.
    """

    x: torch.Tensor
    f: torch.Tensor

    def __len__(self) -> int:
        return self.f.shape[0]

    def state(self, j: int) -> EMState:
        """The EM state after j iterations."""
        return EMState(**{name: getattr(self, name)[j] for name in STATE_FIELDS})


def _record(trace: EMTrace, j: int, f: torch.Tensor, x: torch.Tensor, state: EMState) -> None:
    trace.f[j], trace.x[j] = f, x
    for name in STATE_FIELDS:
        getattr(trace, name)[j] = getattr(state, name)


def em_fuse(
    i: torch.Tensor,
    v: torch.Tensor,
    *,
    iters: int = 50,
    psi: float = EMConfig.psi,
    eta: float = EMConfig.eta,
    variant: str = EMConfig.variant,
    phi: float | None = EMConfig.phi,
    f_init: torch.Tensor | None = None,
    record: bool = False,
) -> tuple[torch.Tensor, EMTrace | None]:
    r"""EM alone (no diffusion prior): `iters` EM steps, each from the previous output.

    f_init=None starts from the mean of the sources (i + v) / 2. For the paper's EM with gamma = rho
    this start is a fixed point (between the sources the L1 loss |y - x| + |x| is flat), but an
    UNSTABLE one when the scales are learned: the tiny asymmetry of the HQS smoothing grows, one scale
    shrinks faster than the other, and after some 30-40 iterations f collapses onto one source (on
    the bundled camera pair, the visible image). Notebook 04 shows it; a chosen phi avoids it.
    phi=None learns gamma and rho; phi > 0 holds them at rho = gamma / phi^2, i.e. minimises
    ||f - i||_1 + phi ||f - v||_1 (+ the smoothness term): phi > 1 pulls f to v, phi < 1 to i.
    Returns (f, trace): trace is None unless record, else an EMTrace (index 0 = the start).
    """
    config = EMConfig(psi, eta, variant, phi)
    check_integer("iters", iters)
    if f_init is None:
        check_images(i=i, v=v, limit=IMAGE_LIMIT, dtypes=EM_DTYPES)
        f_init = 0.5 * (i + v)
    else:
        check_images(i=i, v=v, f_init=f_init, limit=IMAGE_LIMIT, dtypes=EM_DTYPES)
    step = _STEPS[variant]
    f, state = f_init, initial_state(i, phi)
    trace = None
    if record:
        like = {**{name: getattr(state, name) for name in STATE_FIELDS}, "x": f, "f": f}
        trace = EMTrace(**{name: t.new_empty(iters + 1, *t.shape) for name, t in like.items()})
        _record(trace, 0, f, f - v, state)
    for j in range(1, iters + 1):
        f, x, state = step(f, i, v, state, config)
        if trace is not None:
            _record(trace, j, f, x, state)
    return f, trace
