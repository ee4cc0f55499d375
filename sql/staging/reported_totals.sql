-- staging.reported_totals: totals the sources reported themselves (NDA pcl5_total / madrstot /
--   total_sev_v2, SDTM derived records, a mapped total column), for comparison with the item sums.
-- Grain: one row per accepted assessment row that carries a total.
-- Rules, in words: taken from accepted rows only; a total equal to a missing-value code is NULL.
-- Inputs: staging.accepted_ratings.
select
    study_id, usubjid, instrument, instrument_id, visit, avisitn, study_day,
    value as reported_total, source, _source_file, _source_row
from staging.accepted_ratings
where record_type = 'total'
