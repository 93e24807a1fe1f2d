"""ddfm-edu: derive, run and question DDFM (Zhao et al., ICCV 2023) for image fusion."""

__version__ = "0.1.0"
