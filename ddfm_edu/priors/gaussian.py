r"""An analytic prior: a stationary Gaussian image model with a natural-image power spectrum.

Model (on a periodic H x W grid, values in [-1, 1]):

    f_0 = mu + c,   mu ~ N(mu_0, s_mu^2) a constant image (the image mean),
    c   zero-mean stationary Gaussian with power spectrum P(w) = A / |w|^alpha + floor for w != 0
        and P(0) = 0 (c has zero mean),

with w = (w_y, w_x) in cycles per pixel. With the unitary DFT (norm="ortho") the coefficients
F_0(w) are independent, E|F_0(w) - M(w)|^2 = P_eff(w), where P_eff(w) = P(w) for w != 0,
P_eff(0) = H W s_mu^2, and M is the DFT of the constant image mu_0 (non-zero only at w = 0). The
model is the same for every image size: P is a density in cycles per pixel.

Because the forward process f_t = sqrt(alpha_bar_t) f_0 + sqrt(1 - alpha_bar_t) z adds white noise,
which the unitary DFT keeps white, Tweedie's estimate is EXACT and frequency by frequency a Wiener
filter:

    E[F_0(w) | f_t] = M(w) + g_t(w) (F_t(w) - sqrt(alpha_bar_t) M(w)),
    g_t(w) = sqrt(alpha_bar_t) P_eff(w) / (alpha_bar_t P_eff(w) + 1 - alpha_bar_t),

i.e. E[f_0 | f_t] = mu_0 + irfft2(g_t rfft2(f_t - sqrt(alpha_bar_t) mu_0)). The constants were fitted
(`fit_power_spectrum`) to the grey versions of the openly licensed scikit-image images that the
bundled prior is trained on (`ddfm_edu.train_prior.TRAINING_IMAGES`, licences listed there), never
to images without a stated licence or to those reserved as held-out test data (camera, rocket,
phantom).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ddfm_edu.priors.base import Prior

# The fitted constants (`fit_power_spectrum()` reproduces them; tests check it):
AMPLITUDE = 5.356e-4  # A: power at |w| = 1 cycle/pixel, unitary-DFT units on [-1, 1] images
EXPONENT = 2.4947  # alpha: natural images are close to 1/|w|^2 (scale invariance), a bit steeper here
# The fit puts the white floor at its lower bound 0: these images have no flat noise floor
# below the Nyquist frequency; their spectra fall faster than the power law at the highest
# frequencies (lens blur, JPEG), if anything.
FLOOR = 0.0
MEAN = -0.1556  # mu_0: the mean of the images' mean grey values
MEAN_STD = 0.2619  # s_mu: the standard deviation of the images' mean grey values

# Frequency bins of the fit: 24 log-spaced bins from 1/128 to 1/2 cycle per pixel.
_BIN_EDGES = np.geomspace(1 / 128, 0.5, 25)


@dataclass(frozen=True)
class SpectrumFit:
    """The constants of the Gaussian model (see the module docstring)."""

    amplitude: float
    exponent: float
    floor: float
    mean: float
    mean_std: float


def radial_power_spectrum(image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    r"""Mean of |DFT(f - mean f)|^2 (unitary DFT, the image taken as periodic) in the log-spaced
    frequency bins of the fit. Returns (bin centres in cycles/pixel, mean power per bin; NaN for
    a bin without frequencies, as below 1/size cycles per pixel)."""
    power = np.abs(np.fft.rfft2(image - image.mean(), norm="ortho")) ** 2
    w = np.hypot(np.fft.fftfreq(image.shape[0])[:, None], np.fft.rfftfreq(image.shape[1])[None])
    n_bins = len(_BIN_EDGES) - 1
    index = np.digitize(w.ravel(), _BIN_EDGES) - 1
    inside = (index >= 0) & (index < n_bins)
    sums = np.bincount(index[inside], power.ravel()[inside], n_bins)
    counts = np.bincount(index[inside], None, n_bins)
    # bins with no frequency (below 1/size) are NaN, without a division warning
    mean = np.divide(sums, counts, out=np.full(n_bins, np.nan), where=counts > 0)
    return np.sqrt(_BIN_EDGES[:-1] * _BIN_EDGES[1:]), mean


def fit_power_spectrum(names: tuple[str, ...] | None = None) -> SpectrumFit:
    r"""Refit the constants: the power per frequency bin averaged over the images, then
    least squares on the log: min sum_bins (log(A / w^alpha + floor) - log P_bin)^2 with floor >= 0;
    mu_0 and s_mu are the mean and standard deviation of the images' mean values.

    `names`: scikit-image images, grey in [-1, 1] by `train_prior.load_training_images` (which
    refuses the held-out ones); by default the openly licensed set `train_prior.TRAINING_IMAGES`
    that the bundled prior is trained on."""
    from scipy.optimize import least_squares

    from ddfm_edu.train_prior import TRAINING_IMAGES, load_training_images

    images = [image[0].double().numpy() for image in load_training_images(names or TRAINING_IMAGES)]
    centres = radial_power_spectrum(images[0])[0]
    # a bin below an image's lowest frequency (1/size: microaneurysms is 102 px) is NaN for it and
    # averages over the other images
    power = np.nanmean([radial_power_spectrum(image)[1] for image in images], axis=0)

    def residuals(p: np.ndarray) -> np.ndarray:
        return np.log(np.exp(p[0]) * centres ** -p[1] + p[2]) - np.log(power)

    fit = least_squares(
        residuals,
        x0=[np.log(1e-3), 2.0, 1e-4],
        bounds=([-np.inf, 0.0, 0.0], [np.inf, 6.0, np.inf]),
        x_scale=[1.0, 1.0, 1e-4],
    )
    means = np.array([image.mean() for image in images])
    return SpectrumFit(
        amplitude=float(np.exp(fit.x[0])),
        exponent=float(fit.x[1]),
        floor=float(fit.x[2]),
        mean=float(means.mean()),
        mean_std=float(means.std()),
    )


class GaussianPrior(Prior):
    r"""The stationary Gaussian prior with the exact (Wiener-filter) Tweedie estimate.

    channels = 1, stride = 1 (any H, W). `predict_x0` is clipped to [-1, 1] like every prior's;
    `posterior_mean` is the unclipped E[f_0 | f_t] and `predict_eps` the exact E[z | f_t].
    """

    channels = 1
    stride = 1

    def __init__(
        self,
        amplitude: float = AMPLITUDE,
        exponent: float = EXPONENT,
        floor: float = FLOOR,
        mean: float = MEAN,
        mean_std: float = MEAN_STD,
        alpha_bar: torch.Tensor | None = None,
    ) -> None:
        super().__init__(alpha_bar)
        self.fit = SpectrumFit(amplitude, exponent, floor, mean, mean_std)
        self._spectra: dict[tuple, torch.Tensor] = {}

    def spectrum(self, height: int, width: int, *, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        r"""P_eff on the rfft2 grid (height, width // 2 + 1), on the prior's device:
        A / |w|^alpha + floor for w != 0, and H W s_mu^2 at w = 0 (computed once per size)."""
        key = (height, width, self.device, dtype)
        if key not in self._spectra:
            w_y = torch.fft.fftfreq(height, dtype=torch.float64)[:, None]
            w_x = torch.fft.rfftfreq(width, dtype=torch.float64)[None, :]
            w = torch.hypot(w_y, w_x)
            w[0, 0] = 1.0  # placeholder, replaced below
            power = self.fit.amplitude * w**-self.fit.exponent + self.fit.floor
            power[0, 0] = height * width * self.fit.mean_std**2
            self._spectra[key] = power.to(device=self.device, dtype=dtype)
        return self._spectra[key]

    def posterior_mean(self, x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        r"""E[f_0 | f_t] = mu_0 + irfft2(g_t rfft2(f_t - sqrt(alpha_bar_t) mu_0)),
        g_t = sqrt(alpha_bar_t) P_eff / (alpha_bar_t P_eff + 1 - alpha_bar_t)  (not clipped)."""
        height, width = x_t.shape[-2:]
        alpha_bar = self.alpha_bar_at(t, x_t)
        power = self.spectrum(height, width, dtype=x_t.dtype)
        gain = alpha_bar.sqrt() * power / (alpha_bar * power + 1.0 - alpha_bar)
        centred = torch.fft.rfft2(x_t - alpha_bar.sqrt() * self.fit.mean, norm="ortho")
        filtered = torch.fft.irfft2(gain * centred, s=(height, width), norm="ortho")
        return filtered + self.fit.mean

    def predict_x0(self, x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        r"""f_tilde_{0|t} = E[f_0 | f_t], clipped to [-1, 1]."""
        return self.posterior_mean(x_t, t).clamp(-1.0, 1.0)

    def predict_eps(self, x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        r"""E[z | f_t] = (f_t - sqrt(alpha_bar_t) E[f_0 | f_t]) / sqrt(1 - alpha_bar_t), exactly."""
        alpha_bar = self.alpha_bar_at(t, x_t)
        return (x_t - alpha_bar.sqrt() * self.posterior_mean(x_t, t)) / (1.0 - alpha_bar).sqrt()

    def sample(
        self,
        batch: int,
        height: int,
        width: int,
        *,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        r"""Unconditional draws f_0 ~ p(f_0), (batch, 1, height, width), not clipped:
        f_0 = mu_0 + irfft2(sqrt(P_eff) rfft2(z)) with z white noise (drawn on the generator's
        device, the CPU by default, then moved to the prior's device)."""
        device = generator.device if generator is not None else torch.device("cpu")
        z = torch.randn(batch, 1, height, width, generator=generator, device=device)
        z = z.to(self.device)
        coloured = torch.fft.rfft2(z, norm="ortho") * self.spectrum(height, width).sqrt()
        return torch.fft.irfft2(coloured, s=(height, width), norm="ortho") + self.fit.mean
