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

typed as (
    select
        {{ row_keys('r') }},
        upper(nullif(trim(r.dscat), '')) as dscat,
        upper(nullif(trim(r.dsdecod), '')) as dsdecod,
        nullif(trim(r.dsterm), '') as dsterm,
        {{ raw_and_number('r', 'dsstdy') }},
        upper(nullif(trim(r.epoch), '')) as epoch
    from raw_ds as r
),

checked as (
    {% call basic_reason('typed', 't') %}
            case when t.dsdecod is null then 'disposition record has no standardized term (DSDECOD)' end,
            case {{ when_not_whole('t', 'dsstdy', 'study day') }} end
    {% endcall %}
),

{% call first_copy_kept(
    'checked',
    keys='c.usubjid, c.dscat, c.dsdecod, c.dsstdy_num',
    same='subject, category, term and day',
    exact=true,
) %}
        dscat,
        dsdecod,
        dsterm,
        cast(dsstdy_num as integer) as dsstdy,
        epoch
{% endcall %}
