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

has_randomization as (
    select count(*) > 0 as yes from staging.randomization_rows
),

typed as (
    select
        r.study_id,
        r.source,
        r._source_file,
        r._source_row,
        nullif(trim(r.subject), '') as usubjid,
        nullif(trim(r.extrt), '') as extrt,
        nullif(trim(r.exdose), '') as exdose_raw,
        try_cast(nullif(trim(r.exdose), '') as double) as exdose,
        nullif(trim(r.exdosu), '') as exdosu,
        nullif(trim(r.exroute), '') as exroute,
        nullif(trim(r.exstdy), '') as exstdy_raw,
        try_cast(nullif(trim(r.exstdy), '') as double) as exstdy_num,
        nullif(trim(r.exendy), '') as exendy_raw,
        try_cast(nullif(trim(r.exendy), '') as double) as exendy_num,
        nullif(upper(trim(r.exdur)), '') as exdur_raw
    from raw_ex as r
),

durations as (
    select
        t.*,
        case when regexp_full_match(t.exdur_raw, 'PT(\d+H)?(\d+M)?') and t.exdur_raw <> 'PT' then
            coalesce(try_cast(regexp_extract(t.exdur_raw, '(\d+)H', 1) as integer), 0) * 60
            + coalesce(try_cast(regexp_extract(t.exdur_raw, '(\d+)M', 1) as integer), 0)
        end as exdur_min
    from typed as t
),

checked as (
    select
        d.*,
        concat_ws(
            '; ',
            case when d.usubjid is null then 'subject id is empty' end,
            case when (select yes from has_randomization) and d.usubjid is not null
                and d.usubjid not in (select usubjid from staging.subjects) then
                'subject ' || d.usubjid || ' is not in the randomization list'
            end,
            case when d.exstdy_raw is null then 'infusion has no start study day (EXSTDY)'
                when d.exstdy_num is null or d.exstdy_num <> round(d.exstdy_num) then
                'start study day ''' || d.exstdy_raw || ''' is not a whole number'
            end,
            case when d.exendy_raw is not null and (d.exendy_num is null or d.exendy_num <> round(d.exendy_num)) then
                'end study day ''' || d.exendy_raw || ''' is not a whole number'
                when d.exendy_num < d.exstdy_num then
                'end study day ' || d.exendy_raw || ' is before the start day ' || d.exstdy_raw
            end,
            case when d.exdose_raw is not null and (d.exdose is null or d.exdose < 0) then
                'dose ''' || d.exdose_raw || ''' is not a non-negative number'
            end,
            case when d.exdur_raw is not null and d.exdur_min is null then
                'duration ''' || d.exdur_raw || ''' is not an ISO 8601 duration such as PT40M'
            end
        ) as basic_reason
    from durations as d
),

ranked as (
    select
        c.*,
        row_number() over w as copy_no,
        first_value(c._source_file || ' row ' || c._source_row) over w as first_copy
    from checked as c
    window w as (
        partition by c.basic_reason = '', c.usubjid, lower(coalesce(c.extrt, '')), c.exstdy_num
        order by c._source_file, c._source_row
    )
),

final as (
    select
        study_id,
        source,
        _source_file,
        _source_row,
        usubjid,
        extrt,
        exdose,
        exdosu,
        exroute,
        cast(exstdy_num as integer) as exstdy,
        cast(coalesce(exendy_num, exstdy_num) as integer) as exendy,
        exdur_min,
        case
            when basic_reason <> '' then basic_reason
            when copy_no > 1 then
                'duplicate of ' || first_copy || ' (same subject, treatment and start day); the first copy is kept'
        end as reason
    from ranked
)

select
    *,
    case when reason is null then 'accepted' else 'quarantined' end as status
from final
order by _source_file, _source_row
