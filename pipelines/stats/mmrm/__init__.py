"""MMRM engine: marginal linear models with structured within-subject covariance, fitted by REML or
ML, with SAS PROC MIXED's inference.

>>> from pipelines.stats.mmrm import fit_mmrm
>>> res = fit_mmrm(df, "FEV1 ~ RACE + SEX + ARMCD * AVISIT + us(AVISIT | USUBJID)", ref={"SEX": "Male"})
>>> res.converged, res.warnings, res.neg2_loglik, res.aic, res.aicc, res.bic, res.n_obs, res.n_subjects
>>> res.coefficients                       # term, estimate, std_error, df, statistic, p_value, conf_low, conf_high
>>> res.covariance                         # {group: {"labels": [...], "matrix": ndarray}}; covariance_long
>>> res.covariance_parameters              # SAS "Covariance Parameter Estimates" (UN(1,1), AR(1), ...)
>>> res.lsmeans("ARMCD", by="AVISIT")      # SAS LSMEANS / emmeans
>>> res.lsmean_contrasts("ARMCD", by="AVISIT", ref="PBO")
>>> res.type3(); res.test(L); res.estimate(L); res.to_dict()

Conventions (what a statistician needs to know to compare with SAS or R):

* Formula and typing: see :mod:`.formula`. Treatment contrasts, R's level order, ``ref=`` moves a
  level first; the time variable of the covariance term orders the structure by its natural level
  order whatever its reference level.
* -2 log-likelihood is SAS's (REML: sum log|V_i| + log|X'V^-1X| + r'V^-1r + (N-p) log 2pi). AIC/AICC/BIC
  count the covariance parameters (REML) or covariance parameters + rank(X) (ML); BIC uses
  ``n_subjects``, SAS's count of subjects in the data read (``n_subjects_used`` counts subjects with at
  least one analysed observation, as R mmrm does).
* Rank-deficient designs: columns linearly dependent on earlier columns are aliased (SAS's sweep);
  the fit uses the remaining columns, aliased coefficients are reported as NaN ("not estimable";
  SAS prints 0 with no SE), LS means and contrasts are checked for estimability (NaN otherwise).
* Inference: ``df_method`` kenward-roger (default; SEs from the KR-adjusted covariance, computed in
  SAS's covariance parameterisation with the observed information), satterthwaite, residual,
  between-within; ``vcov="kenward-roger-linear"`` (SAS DDFM=KR(LINEAR)) or ``"empirical"``
  (sandwich, between-within df by default). See :mod:`.inference` and :mod:`.kenward_roger`.
* LS means: equal weights over the levels of the other factors, continuous covariates at their mean
  over the analysis rows; contrasts are level minus reference (or all pairs).
* Type III tests: SAS's hypotheses (sum-to-zero coding, covariates uncentred), rows in SAS's basis
  (each level against the reference level) so multi-df Satterthwaite F tests match SAS when SAS's
  ``ref=`` levels are ours.
* A fit that does not converge, or whose Hessian or covariance matrix is singular, comes back with
  ``converged=False`` and a warning saying why; it never raises for numerical trouble.
"""

from .covariance import STRUCTURES
from .model import fit_mmrm
from .result import MMRMResult

__all__ = ["STRUCTURES", "MMRMResult", "fit_mmrm"]
