-- staging.subject_columns: one value per subject and subject-level column declared on longitudinal
--   (assessment) files - site, sex, age, age_band, race, ethnicity, covariates.
-- Grain: one row per subject x column that any file row gave a value.
-- Rules, in words:
--   S1 Values are compared trimmed; empty cells say nothing.
--   S2 A subject whose rows give one value has that value (every row may repeat it, as REDCap
--      longitudinal exports do); rows of several sources (one file feeding several sources, or
--      several files) are pooled, and sources lists which source claimed which rows.
--   S3 Conflict rule: different values across the subject's rows -> value NULL, and every row that
--      gave a value is quarantined for this column (qc.quarantine, raw_table raw.subject_columns)
--      with the values and rows in the reason; the row's ratings are not affected.
-- Inputs: raw.subject_columns.
with

rows as (
    select
        study_id, source, _source_file, _source_row,
        nullif(trim(subject), '') as usubjid,
        nullif(trim(site), '') as site,
        nullif(trim(sex), '') as sex,
        nullif(trim(age), '') as age,
        nullif(trim(age_band), '') as age_band,
        nullif(trim(race), '') as race,
        nullif(trim(ethnicity), '') as ethnicity,
        nullif(trim(covariates), '') as covariates
    from raw.subject_columns
),

long as (
    unpivot rows
    on site, sex, age, age_band, race, ethnicity, covariates
    into name column_name value value
),

valued as (
    select * from long where usubjid is not null and value is not null
),

per_value as (
    select
        any_value(study_id) as study_id, usubjid, column_name, value,
        count(*) as n_rows,
        string_agg(source || ': ' || _source_file || ' row ' || _source_row, ', '
                   order by source, _source_file, _source_row) as rows_text
    from valued
    group by usubjid, column_name, value
),

final as (
    select
        any_value(study_id) as study_id,
        usubjid,
        column_name,
        case when count(*) = 1 then any_value(value) end as value,
        count(*) as n_values,
        sum(n_rows) as n_rows,
        case when count(*) > 1 then
            column_name || ' differs across the rows of subject ' || usubjid || ' ('
            || string_agg('''' || value || ''' in ' || rows_text, '; ' order by value)
            || '); the subject-level value is left empty - correct the source so every row agrees'
        end as conflict,
        (select string_agg(distinct v.source || ' (' || v._source_file || ')', ', '
                           order by v.source || ' (' || v._source_file || ')')
         from valued as v where v.usubjid = p.usubjid and v.column_name = p.column_name) as sources
    from per_value as p
    group by usubjid, column_name
)

select * from final
order by usubjid, column_name
