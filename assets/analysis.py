"""Analysis layer: scores, ADaM-style ADSL and ADQS built by the SQL models in sql/analysis, and the
reported-vs-item total findings in qc.total_mismatches."""

from assets.sql_models import sql_assets

analysis_assets = sql_assets("analysis", extra_models=("qc.total_mismatches",))
