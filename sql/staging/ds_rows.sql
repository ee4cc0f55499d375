-- staging.ds_rows: the decision on every raw disposition row, with its values typed.
-- Grain: one row per raw.ds row (source file x source row).
-- Rules, in words:
--   R1 the subject id must be present;
--   R2 when the study has a randomization list, the subject must be on it;
--   R3 the standardized disposition term (DSDECOD, e.g. COMPLETED, ADVERSE EVENT, PHYSICIAN DECISION)
--      must be present;
--   R4 the study day, when given, must be a whole number;
--   R5 the same subject, category, term and day received twice is an exact duplicate: the first copy
--      is kept, later copies are quarantined.
-- DSCAT: records of category PROTOCOL MILESTONE (informed consent, randomized) are accepted but are
-- not disposition events; ADSL takes EOSSTT/DCSREAS from DISPOSITION EVENT records (or records
-- without a category).
-- Inputs: raw.ds, staging.randomization_rows, staging.subjects.
with

raw_ds as (
    select * from raw.ds
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
        upper(nullif(trim(r.dscat), '')) as dscat,
        upper(nullif(trim(r.dsdecod), '')) as dsdecod,
        nullif(trim(r.dsterm), '') as dsterm,
        nullif(trim(r.dsstdy), '') as dsstdy_raw,
        try_cast(nullif(trim(r.dsstdy), '') as double) as dsstdy_num,
        upper(nullif(trim(r.epoch), '')) as epoch
    from raw_ds as r
),

checked as (
    select
        t.*,
        concat_ws(
            '; ',
            case when t.usubjid is null then 'subject id is empty' end,
            case when (select yes from has_randomization) and t.usubjid is not null
                and t.usubjid not in (select usubjid from staging.subjects) then
                'subject ' || t.usubjid || ' is not in the randomization list'
            end,
            case when t.dsdecod is null then 'disposition record has no standardized term (DSDECOD)' end,
            case when t.dsstdy_raw is not null and (t.dsstdy_num is null or t.dsstdy_num <> round(t.dsstdy_num)) then
                'study day ''' || t.dsstdy_raw || ''' is not a whole number'
            end
        ) as basic_reason
    from typed as t
),

ranked as (
    select
        c.*,
        row_number() over w as copy_no,
        first_value(c._source_file || ' row ' || c._source_row) over w as first_copy
    from checked as c
    window w as (
        partition by c.basic_reason = '', c.usubjid, c.dscat, c.dsdecod, c.dsstdy_num
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
        dscat,
        dsdecod,
        dsterm,
        cast(dsstdy_num as integer) as dsstdy,
        epoch,
        case
            when basic_reason <> '' then basic_reason
            when copy_no > 1 then
                'exact duplicate of ' || first_copy || ' (same subject, category, term and day); the first copy is kept'
        end as reason
    from ranked
)

select
    *,
    case when reason is null then 'accepted' else 'quarantined' end as status
from final
order by _source_file, _source_row
