"""Ablation studies: variants that differ from a baseline only in configuration, run, evaluated and reported."""

from .report import write_reports
from .runner import AblationArguments, run_study, study_dir
from .studies import STUDIES, Variant, parse_grid, study_variants

__all__ = [
    "STUDIES",
    "AblationArguments",
    "Variant",
    "parse_grid",
    "run_study",
    "study_dir",
    "study_variants",
    "write_reports",
]
