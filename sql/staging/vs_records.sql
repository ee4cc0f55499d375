-- staging.vs_records: every raw vital-sign row as one record per test, typed and checked.
-- Grain: one row per raw.vs row x test (long files: the row's own test; wide files: systolic,
--   diastolic and pulse columns, each a record).
-- Rules, in words:
--   * The test is SYSBP (VSTESTCD SYSBP or SBP), DIABP (DIABP or DBP) or PULSE (PULSE, HR); any other
--     test code is 'other' and not analysed (the record is skipped, not rejected).
--   * The value is VSSTRESN/VSORRES as received; empty, or VSSTAT = NOT DONE, is missing (skipped).
--     A value must be a number within a plausible range (assumption, to catch unit and typing errors):
--     SYSBP 50-300 mmHg, DIABP 20-200 mmHg, PULSE 20-250 beats/min.
--   * Elapsed time from the start of the infusion: VSELTM as an ISO 8601 duration (PT40M, PT1H30M,
--     -PT15M for 15 minutes before) in minutes. Without VSELTM, a time point named like PRE... is
--     taken as before the infusion (elapsed NULL, pre-infusion).
--   * The study day must be a whole number, and the record needs a time point (VSELTM or VSTPT).
-- Inputs: raw.vs.
with

raw_vs as (
    select * from raw.vs
),

long_records as (
    select
        r.*,
        upper(trim(r.vstestcd)) as testcd_raw,
        r.vsorres as value_raw
    from raw_vs as r
    where r.vstestcd is not null
),

wide_records as (
    select r.*, t.testcd_raw, t.value_raw
    from raw_vs as r
    cross join lateral (
        select * from (values ('SYSBP', r.sysbp), ('DIABP', r.diabp), ('PULSE', r.pulse)) as v(testcd_raw, value_raw)
    ) as t
    where r.vstestcd is null and t.value_raw is not null
),

records as (
    select * from long_records
    union all
    select * from wide_records
),

typed as (
    select
        {{ row_keys('r') }},
        case
            when r.testcd_raw in ('SYSBP', 'SBP') then 'SYSBP'
            when r.testcd_raw in ('DIABP', 'DBP') then 'DIABP'
            when r.testcd_raw in ('PULSE', 'HR', 'HEARTRATE') then 'PULSE'
            else 'other'
        end as paramcd,
        r.testcd_raw,
        nullif(trim(r.value_raw), '') as value_raw,
        upper(coalesce(trim(r.vsstat), '')) = 'NOT DONE' as not_done,
        try_cast(nullif(trim(r.value_raw), '') as double) as value_num,
        nullif(trim(r.vsorresu), '') as unit,
        nullif(trim(r.vstpt), '') as vstpt,
        try_cast(nullif(trim(r.vstptnum), '') as double) as vstptnum,
        nullif(upper(trim(r.vseltm)), '') as vseltm_raw,
        {{ raw_and_number('r', 'vsdy') }},
        nullif(trim(r.visit), '') as visit
    from records as r
),

elapsed as (
    select
        t.*,
        {{ iso_minutes('t.vseltm_raw', signed=true) }} as eltm_min
    from typed as t
),

ranges as (
    select * from (values ('SYSBP', 50.0, 300.0), ('DIABP', 20.0, 200.0), ('PULSE', 20.0, 250.0)) as g(paramcd, lo, hi)
),

final as (
    select
        {{ key_columns('e') }},
        e.paramcd,
        e.testcd_raw,
        e.value_raw,
        case when not e.not_done then e.value_num end as aval,
        e.unit,
        e.vstpt,
        e.vstptnum,
        e.vseltm_raw,
        e.eltm_min,
        coalesce(e.eltm_min <= 0, upper(e.vstpt) like 'PRE%') as is_pre,
        cast(e.vsdy_num as integer) as vsdy,
        e.visit,
        e.paramcd = 'other' or e.not_done or e.value_raw is null as is_skipped,
        nullif(concat_ws(
            '; ',
            case when e.paramcd <> 'other' and not e.not_done and e.value_raw is not null then
                case
                    when e.value_num is null then e.paramcd || ' value ''' || e.value_raw || ''' is not a number'
                    when e.value_num < g.lo or e.value_num > g.hi then
                        e.paramcd || ' value ' || e.value_raw || ' is outside the plausible range ' || g.lo::integer
                        || '-' || g.hi::integer
                end
            end,
            case when e.vseltm_raw is not null and e.eltm_min is null then
                'elapsed time ''' || e.vseltm_raw || ''' is not an ISO 8601 duration such as PT40M or -PT15M'
            end
        ), '') as value_problem
    from elapsed as e
    left join ranges as g on g.paramcd = e.paramcd
)

select * from final
