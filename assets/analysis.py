"""Analysis layer: scores, ADaM-style ADSL and ADQS built by the SQL models in sql/analysis, and the
reported-vs-item total findings in qc.total_mismatches; one step, with the GX suites on ADSL and ADQS
run right after their tables."""

from assets.sql_models import layer_asset
from pipelines.core import sql
from pipelines.orchestration.checks import CHECKS

analysis_assets = [layer_asset("analysis", "analysis", [*sql.models("analysis"), "qc.total_mismatches"], checks=CHECKS)]
