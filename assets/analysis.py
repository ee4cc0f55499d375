"""Analysis layer: ADaM-style ADSL and ADQS built by the SQL models in sql/analysis."""

from assets.sql_models import sql_assets

analysis_assets = sql_assets("analysis")
