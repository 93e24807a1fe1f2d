r"""Checkers for the exercises of the notebooks: they call the reader's function on a few inputs
and say WHAT is wrong (which case, expected vs got, and a hint when the answer matches a known
mistake), e.g.

    >>> exercises.check_m_bar(my_m_bar)
    ExerciseError: check_m_bar: wrong for a large residual: expected 0.27, got 3.7 at r = y - x = 5,
    gamma = 1.1. Hint: ...

A right answer prints one line ("check_m_bar: correct on 5 cases ...") and returns True; a wrong
one raises ExerciseError (an AssertionError) with the diagnosis. Every checker prints "not
attempted yet" (and returns False) while the reader's stub returns None: the committed notebooks
run their exercise cells with the stubs in place. The shared machinery is in `harness`; the
checkers live in one module per notebook:

Notebook 00 (quickstart, `quickstart`): check_max_abs.
Notebook 01 (Laplace as a Gaussian scale mixture, `scale_mixture`): check_laplace_pdf,
    check_laplace_scale, check_gsm_sampler, check_gsm_pdf (the mixture integral by quadrature).
Notebook 02 (the E-step, `e_step`): check_m_bar, check_posterior_mean_m, check_gamma_update,
    check_e_step (the whole E-step).
Notebook 03 (the M-step by HQS, `m_step`): check_grad, check_k_update, check_x_update,
    check_em_step (one EM step assembled from the E-step and the HQS blocks).
Notebook 04 (EM fusion and phi, `em_fusion`): check_phi_from_scales, check_rho_from_phi,
    check_l1_fusion_loss, check_em_alone (EM alone as a loop of EM steps).
Notebook 05 (diffusion primer, `diffusion_primer`): check_q_sample, check_tweedie, check_ddim_step,
    check_generalised_step (one step of the DDIM family).
Notebook 06 (priors, `priors`): check_score_from_x0, check_edm_coefficients,
    check_wiener_denoiser (the Gaussian prior's denoiser).
Notebook 07 (DDFM sampling, `ddfm_sampling`): check_ddpm_mean, check_replace_luma,
    check_ddfm_loop (the whole DDFM loop).
Notebook 08 (evaluation, `evaluation`): check_entropy, check_spatial_frequency.
Notebook 09 (medical fusion, `medical_fusion`): check_luma, check_merge_luma_chroma.
Notebook 10 (paper vs released code, `released_code`): check_released_output, check_studio_luma.
"""

from ddfm_edu.exercises.ddfm_sampling import check_ddfm_loop, check_ddpm_mean, check_replace_luma
from ddfm_edu.exercises.diffusion_primer import (
    check_ddim_step,
    check_generalised_step,
    check_q_sample,
    check_tweedie,
)
from ddfm_edu.exercises.e_step import check_e_step, check_gamma_update, check_m_bar, check_posterior_mean_m
from ddfm_edu.exercises.em_fusion import (
    check_em_alone,
    check_l1_fusion_loss,
    check_phi_from_scales,
    check_rho_from_phi,
)
from ddfm_edu.exercises.evaluation import check_entropy, check_spatial_frequency
from ddfm_edu.exercises.harness import Case, ExerciseError
from ddfm_edu.exercises.m_step import check_em_step, check_grad, check_k_update, check_x_update
from ddfm_edu.exercises.medical_fusion import check_luma, check_merge_luma_chroma
from ddfm_edu.exercises.priors import check_edm_coefficients, check_score_from_x0, check_wiener_denoiser
from ddfm_edu.exercises.quickstart import check_max_abs
from ddfm_edu.exercises.released_code import check_released_output, check_studio_luma
from ddfm_edu.exercises.scale_mixture import (
    check_gsm_pdf,
    check_gsm_sampler,
    check_laplace_pdf,
    check_laplace_scale,
)

__all__ = [
    "Case",
    "ExerciseError",
    "check_ddfm_loop",
    "check_ddim_step",
    "check_ddpm_mean",
    "check_e_step",
    "check_edm_coefficients",
    "check_em_alone",
    "check_em_step",
    "check_entropy",
    "check_gamma_update",
    "check_generalised_step",
    "check_grad",
    "check_gsm_pdf",
    "check_gsm_sampler",
    "check_k_update",
    "check_l1_fusion_loss",
    "check_laplace_pdf",
    "check_laplace_scale",
    "check_luma",
    "check_m_bar",
    "check_max_abs",
    "check_merge_luma_chroma",
    "check_phi_from_scales",
    "check_posterior_mean_m",
    "check_q_sample",
    "check_released_output",
    "check_replace_luma",
    "check_rho_from_phi",
    "check_score_from_x0",
    "check_spatial_frequency",
    "check_studio_luma",
    "check_tweedie",
    "check_wiener_denoiser",
    "check_x_update",
]
