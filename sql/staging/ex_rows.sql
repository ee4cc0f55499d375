-- staging.ex_rows: the decision on every raw exposure (infusion) row, with its values typed.
-- Grain: one row per raw.ex row (source file x source row).
-- Rules, in words:
--   R1 the subject id must be present;
--   R2 when the study has a randomization list, the subject must be on it;
--   R3 the start study day must be a whole number (it orders the infusions and dates the first dose);
--   R4 the end study day, when given, must be a whole number not before the start day;
--   R5 the dose, when given, must be a non-negative number;
--   R6 the duration, when given, must be an ISO 8601 duration (PT40M, PT1H, PT1H30M);
--   R7 the same subject, treatment and start day received twice is a duplicate: the first copy (by
--      file, row) is kept, later copies are quarantined.
-- A record with dose 0 is kept (an infusion started and stopped); ADEX counts it as an infusion.
-- Inputs: raw.ex, staging.randomization_rows, staging.subjects.
with

raw_ex as (
    select * from raw.ex
),

typed as (
    select
        {{ row_keys('r') }},
        nullif(trim(r.extrt), '') as extrt,
        nullif(trim(r.exdose), '') as exdose_raw,
        try_cast(nullif(trim(r.exdose), '') as double) as exdose,
        nullif(trim(r.exdosu), '') as exdosu,
        nullif(trim(r.exroute), '') as exroute,
        {{ raw_and_number('r', 'exstdy') }},
        {{ raw_and_number('r', 'exendy') }},
        nullif(upper(trim(r.exdur)), '') as exdur_raw
    from raw_ex as r
),

durations as (
    select
        t.*,
        {{ iso_minutes('t.exdur_raw') }} as exdur_min
    from typed as t
),

checked as (
    {% call basic_reason('durations', 'd') %}
            case when d.exstdy_raw is null then 'infusion has no start study day (EXSTDY)'
                {{ when_not_whole('d', 'exstdy', 'start study day') }}
            end,
            case {{ when_not_whole('d', 'exendy', 'end study day') }}
                when d.exendy_num < d.exstdy_num then
                'end study day ' || d.exendy_raw || ' is before the start day ' || d.exstdy_raw
            end,
            case when d.exdose_raw is not null and (d.exdose is null or d.exdose < 0) then
                'dose ''' || d.exdose_raw || ''' is not a non-negative number'
            end,
            case when d.exdur_raw is not null and d.exdur_min is null then
                'duration ''' || d.exdur_raw || ''' is not an ISO 8601 duration such as PT40M'
            end
    {% endcall %}
),

{% call first_copy_kept(
    'checked',
    keys="c.usubjid, lower(coalesce(c.extrt, '')), c.exstdy_num",
    same='subject, treatment and start day',
) %}
        extrt,
        exdose,
        exdosu,
        exroute,
        cast(exstdy_num as integer) as exstdy,
        cast(coalesce(exendy_num, exstdy_num) as integer) as exendy,
        exdur_min
{% endcall %}
