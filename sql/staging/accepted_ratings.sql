-- staging.accepted_ratings: every item rating and reported total of an accepted assessment row, with the row's subject, visit and day.
-- Grain: one row per accepted assessment row x item or total (staging.assessment_items records of
--   rows whose status in staging.assessment_rows is 'accepted').
-- Rules, in words: only accepted rows are kept; record_type tells an item from a reported total;
--   staging.item_responses and staging.reported_totals are its two halves.
-- materialized: view (the two tables built from it are what is stored).
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
        i.record_type,
        i.item,
        i.value,
        i.is_missing,
        i.source,
        i._source_file,
        i._source_row
    from staging.assessment_items as i
    inner join accepted as r
        on r.instrument_id = i.instrument_id and r._source_file = i._source_file and r._source_row = i._source_row
    where i.record_type in ('item', 'total')
)

select * from final
