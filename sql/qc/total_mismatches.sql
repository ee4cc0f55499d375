-- qc.total_mismatches: totals a source reported that disagree with, or could not be checked against, its items.
-- Grain: one row per assessment (subject x instrument x visit x study day) whose reported total is a finding.
-- Inputs: analysis.scores.
-- Rules, in words:
--   finding 'mismatch': every item of the total is answered and their sum differs from the
--     reported total; the item-derived score is what analysis.adqs uses.
--   finding 'items_incomplete': some but not all items are answered, so the sum cannot be checked;
--     the reported total is not used (aval follows the study's missing-item rule: missing, or
--     prorated - item_derived shows which).
--   Totals that agree, and totals-only assessments (no item answered; the reported total is used,
--   dtype 'REPORTED'), are not findings.
with

scores as (
    select * from analysis.scores
),

final as (
    select
        s.study_id,
        getvariable('run_id') as run_id,
        s.usubjid,
        s.instrument,
        s.paramcd,
        s.visit,
        s.study_day,
        case s.total_check when 'differs' then 'mismatch' else s.total_check end as finding,
        coalesce(s.item_sum, s.aval) as item_derived,
        s.reported_total,
        coalesce(s.item_sum, s.aval) - s.reported_total as difference,
        s.n_items_missing,
        s.source,
        s.reported_source_file as _source_file,
        s.reported_source_row as _source_row,
        case s.total_check
            when 'differs' then
                s.instrument || ' total reported as ' || format('{:g}', s.reported_total) || ' but its '
                || s.n_items || ' items sum to ' || format('{:g}', s.item_sum) || '; the item sum is used'
            else
                s.instrument || ' total reported as ' || format('{:g}', s.reported_total) || ' but '
                || s.n_items_missing || ' of its ' || s.n_items || ' items are missing; the reported total is not used'
        end as message
    from scores as s
    where s.total_check in ('differs', 'items_incomplete')
)

select * from final
order by usubjid, instrument, study_day
