-- staging.subjects: one row per subject the study randomized, with the manifest arm.
-- Grain: one row per usubjid.
-- Rules, in words: subjects come from the accepted randomization rows (randomization files or
--   SDTM DM). A study without any randomization source takes its subjects from the assessment
--   rows: the arm from the rows' arm column when the source maps one, or the only arm of a
--   single-arm study. Covariates keep the values as received (text).
--   Subject-level columns declared on longitudinal files (staging.subject_columns: one value per
--   subject, empty on conflict) fill site, sex, age, age_band, race, ethnicity and covariates where
--   the randomization source gives none.
-- Inputs: staging.randomization_rows, raw.randomization, raw.<instrument>, ref.arms, ref.arm_codes,
--   staging.subject_columns.
with

randomized as (
    select
        rr.study_id,
        rr.usubjid,
        rr.arm,
        r.site,
        r.sex,
        r.age,
        r.age_band,
        r.race,
        r.ethnicity,
        r.covariates,
        nullif(trim(r.dcsreas), '') as dcsreas,
        rr.source,
        rr._source_file,
        rr._source_row
    from staging.randomization_rows as rr
    inner join raw.randomization as r
        on r._source_file = rr._source_file and r._source_row = rr._source_row
    where rr.status = 'accepted'
),

raw_assessment_arms as (
    {% for inst in instruments %}
    {{ 'union all' if not loop.first }}
    select study_id, source, _source_file, trim(subject) as usubjid, lower(trim(arm)) as arm_code from raw.{{ inst }}
    {% endfor %}
),

from_assessments as (
    select
        any_value(r.study_id) as study_id,
        r.usubjid,
        coalesce(
            min(ac.arm),
            case when (select count(*) from ref.arms) = 1 then (select min(arm) from ref.arms) end
        ) as arm,
        min(r.source) as source,
        min(r._source_file) as _source_file
    from raw_assessment_arms as r
    left join ref.arm_codes as ac on ac.source = r.source and ac.code = r.arm_code
    where r.usubjid is not null and r.usubjid <> ''
        and not exists (select 1 from randomized)
    group by r.usubjid
),

unioned as (
    select * from randomized
    union all by name
    select * from from_assessments
),

subject_level as (
    select
        usubjid,
        max(value) filter (where column_name = 'site') as site,
        max(value) filter (where column_name = 'sex') as sex,
        max(value) filter (where column_name = 'age') as age,
        max(value) filter (where column_name = 'age_band') as age_band,
        max(value) filter (where column_name = 'race') as race,
        max(value) filter (where column_name = 'ethnicity') as ethnicity,
        max(value) filter (where column_name = 'covariates') as covariates
    from staging.subject_columns
    group by usubjid
),

final as (
    select
        u.study_id,
        u.usubjid,
        u.arm,
        a.arm_label,
        a.arm_role,
        a.armn,
        coalesce(u.site, sl.site) as site,
        coalesce(u.sex, sl.sex) as sex,
        try_cast(coalesce(u.age, sl.age) as double) as age,
        coalesce(u.age_band, sl.age_band) as age_band,
        coalesce(u.race, sl.race) as race,
        coalesce(u.ethnicity, sl.ethnicity) as ethnicity,
        coalesce(u.covariates, sl.covariates) as covariates,
        u.dcsreas,
        u.source,
        u._source_file,
        u._source_row
    from unioned as u
    left join ref.arms as a on a.arm = u.arm
    left join subject_level as sl on sl.usubjid = u.usubjid
)

select * from final
order by usubjid
