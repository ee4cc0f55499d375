"""MMRM engine: marginal linear models with structured within-subject covariance, fitted by REML or
ML, with SAS PROC MIXED's inference (Kenward-Roger, Satterthwaite, residual, between-within df;
model-based, KR-adjusted or empirical covariance of the fixed effects).

>>> from pipelines.stats.mmrm import fit_mmrm
>>> res = fit_mmrm(df, "FEV1 ~ RACE + SEX + ARMCD * AVISIT + us(AVISIT | USUBJID)", ref={"SEX": "Male"})
>>> res.coefficients, res.lsmeans("ARMCD", by="AVISIT"), res.lsmean_contrasts("ARMCD", by="AVISIT")
"""

from .covariance import STRUCTURES
from .model import fit_mmrm
from .result import MMRMResult

__all__ = ["STRUCTURES", "MMRMResult", "fit_mmrm"]
