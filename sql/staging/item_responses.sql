-- staging.item_responses: every accepted rating, in one long shape whatever the source layout.
-- Grain: one row per subject x instrument x visit x item per assessment (a visit assessed twice on
--   different recorded days keeps both; analysis.adqs ANL01FL picks one).
-- Rules, in words: only items of accepted rows (staging.assessment_rows) are kept; value is the
--   numeric rating after missing-value codes are applied (NULL when missing); item is the position
--   in the instrument's standard order (PCL-5 1-20, CAPS-5 1-20 = B1..E6 and 29-30 dissociation,
--   MADRS 1-10); study_day is the recorded day, or the visit's nominal day when none was recorded.
-- Inputs: staging.assessment_items, staging.assessment_rows.
with

accepted as (
    select *
    from staging.assessment_rows
    where status = 'accepted'
),

final as (
    select
        r.study_id,
        r.usubjid,
        r.instrument,
        i.instrument_id,
        r.visit,
        r.avisitn,
        r.study_day,
        r.day_recorded,
        i.item,
        i.value,
        i.is_missing,
        i.source,
        i._source_file,
        i._source_row
    from staging.assessment_items as i
    inner join accepted as r
        on r.instrument_id = i.instrument_id and r._source_file = i._source_file and r._source_row = i._source_row
    where i.record_type = 'item'
)

select * from final
