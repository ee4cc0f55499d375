-- staging.item_responses: every accepted rating, in one long shape whatever the source layout.
-- Grain: one row per subject x instrument x visit x item per assessment (a visit assessed twice on
--   different recorded days keeps both; analysis.adqs ANL01FL picks one).
-- Rules, in words: only items of accepted rows (staging.assessment_rows) are kept; value is the
--   numeric rating after missing-value codes are applied (NULL when missing); item is the position
--   in the instrument's standard order (PCL-5 1-20, CAPS-5 1-20 = B1..E6 and 29-30 dissociation,
--   MADRS 1-10); study_day is the recorded day, or the visit's nominal day when none was recorded.
--   source, _source_file and _source_row are the raw row the rating came from (raw.<instrument>);
--   row_id is that row's number in staging.assessment_rows (models group by it, not by the strings).
-- materialized: view (staging.item_values holds the ratings by assessment row number; the row's
--   subject, visit, day and lineage are joined from staging.assessment_rows)
-- published: table (analysts query it in the published warehouse)
-- Inputs: staging.item_values, staging.assessment_rows.
select
    r.study_id, r.usubjid, r.instrument, r.instrument_id, r.visit, r.avisitn, r.study_day, r.day_recorded,
    v.item, v.value, v.is_missing, r.source, r._source_file, r._source_row, v.row_id
from staging.item_values as v
inner join staging.assessment_rows as r on r.row_id = v.row_id
