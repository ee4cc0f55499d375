-- staging.item_responses: every accepted rating, in one long shape whatever the source layout.
-- Grain: one row per subject x instrument x visit x item per assessment (a visit assessed twice on
--   different recorded days keeps both; analysis.adqs ANL01FL picks one).
-- Rules, in words: only items of accepted rows (staging.assessment_rows) are kept; value is the
--   numeric rating after missing-value codes are applied (NULL when missing); item is the position
--   in the instrument's standard order (PCL-5 1-20, CAPS-5 1-20 = B1..E6 and 29-30 dissociation,
--   MADRS 1-10); study_day is the recorded day, or the visit's nominal day when none was recorded.
-- Inputs: staging.accepted_ratings.
select
    study_id, usubjid, instrument, instrument_id, visit, avisitn, study_day, day_recorded,
    item, value, is_missing, source, _source_file, _source_row
from staging.accepted_ratings
where record_type = 'item'
