-- staging.reported_totals: totals the sources reported themselves (NDA pcl5_total / madrstot /
--   total_sev_v2, SDTM derived records, a mapped total column), for comparison with the item sums.
-- Grain: one row per accepted assessment row that carries a total.
-- Rules, in words: taken from accepted rows only; a total equal to a missing-value code is NULL.
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
        i.value as reported_total,
        i.source,
        i._source_file,
        i._source_row
    from staging.assessment_items as i
    inner join accepted as r
        on r.instrument_id = i.instrument_id and r._source_file = i._source_file and r._source_row = i._source_row
    where i.record_type = 'total'
)

select * from final
