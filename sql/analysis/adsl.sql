-- analysis.adsl: ADaM-style subject-level analysis dataset - arm, population flags and baseline covariates.
-- Grain: one row per subject of staging.subjects (the randomized subjects; for a study without a
--   randomization source, the subjects seen in the assessments).
-- Inputs: staging.subjects, analysis.adqs, ref.study, ref.scores, analysis.adex, staging.ds_rows.
-- Rules, in words:
--   L1 TRT01P is the randomized arm id (manifest arms[].id), TRT01PN its number in the manifest,
--      ARM_ROLE experimental or control.
--   L2 RANDFL = 'Y' when the subject has an arm (every subject of a randomization list; a subject
--      known only from assessments without an arm column in a two-arm study is 'N'). ITTFL = RANDFL
--      (intention to treat: everyone randomized, analysed as randomized).
--   L3 The completer parameter is the manifest's primary_parameter (default CAPS5TOT) when the study
--      has any value of it; otherwise the first instrument total with values, in PARAMCD order
--      (CAPS5TOT, MADRSTOT, PCL5TOT). COMPLFL = 'Y' when the subject has a value of that parameter
--      at the manifest's primary visit (an ANL01FL record), else 'N'. PRIMARY_BASE is the
--      subject's baseline value of the same parameter.
--   L4 Baseline covariates are kept as received: site, sex, age (years, numeric when given as a
--      number), age_band, race, ethnicity; other declared covariates stay in one JSON object
--      (covariates) because their names differ between studies.
--   L5 Exposure (when the study has EX data): TRTSDY / TRTEDY are the study days of the first and last
--      infusion (ADEX; study days, not dates - the warehouse holds no calendar dates), NINF the number
--      of infusions received; SAFFL = 'Y' when the subject received at least one infusion, 'N' when
--      the study has exposure data and the subject none, NULL when the study has no exposure data.
--   L6 Disposition (when the study has DS data): the subject's last disposition event (DSCAT
--      DISPOSITION EVENT or no category; latest study day, then the last file row). EOSSTT =
--      'COMPLETED' when its DSDECOD is COMPLETED, else 'DISCONTINUED' with DCSREAS = DSDECOD (e.g.
--      PHYSICIAN DECISION, ADVERSE EVENT) and DCSREASP = DSTERM as received; EOSSTT NULL without a
--      disposition record.
with

subjects as (
    select * from staging.subjects
),

adqs as (
    select * from analysis.adqs
),

study as (
    select * from ref.study
),

totals as (
    select distinct paramcd from ref.scores where is_total
),

params_with_values as (
    select distinct paramcd from adqs where aval is not null
),

-- L3
completer_parameter as (
    select
        coalesce(
            (select st.primary_parameter from params_with_values as p where p.paramcd = st.primary_parameter),
            (select min(t.paramcd) from totals as t inner join params_with_values as p on p.paramcd = t.paramcd),
            st.primary_parameter
        ) as paramcd
    from study as st
),

completers as (
    select distinct q.usubjid
    from adqs as q
    cross join study as st
    cross join completer_parameter as cp
    where q.paramcd = cp.paramcd and q.avisit = st.primary_visit and q.anl01fl = 'Y'
),

baselines as (
    select q.usubjid, q.base
    from adqs as q
    cross join completer_parameter as cp
    where q.paramcd = cp.paramcd and q.ablfl = 'Y'
),

exposure as (
    select usubjid, min(trtsdy) as trtsdy, min(trtedy) as trtedy, min(ninf) as ninf
    from analysis.adex
    group by usubjid
),

has_exposure as (
    select count(*) > 0 as yes from analysis.adex
),

disposition as (
    select
        usubjid,
        arg_max(dsdecod, [coalesce(dsstdy, -1000000), _source_row]) as dsdecod,
        arg_max(dsterm, [coalesce(dsstdy, -1000000), _source_row]) as dsterm
    from staging.ds_rows
    where status = 'accepted' and coalesce(dscat, 'DISPOSITION EVENT') = 'DISPOSITION EVENT'
    group by usubjid
),

final as (
    select
        s.study_id,
        s.usubjid,
        s.arm as trt01p,
        s.armn as trt01pn,
        s.arm_label,
        s.arm_role,
        case when s.arm is not null then 'Y' else 'N' end as randfl,
        case when s.arm is not null then 'Y' else 'N' end as ittfl,
        case when c.usubjid is not null then 'Y' else 'N' end as complfl,
        cp.paramcd as primary_paramcd,
        b.base as primary_base,
        s.site,
        s.sex,
        s.age,
        s.age_band,
        s.race,
        s.ethnicity,
        s.covariates,
        x.trtsdy,
        x.trtedy,
        x.ninf,
        case
            when x.usubjid is not null then 'Y'
            when (select yes from has_exposure) then 'N'
        end as saffl,
        case when d.dsdecod = 'COMPLETED' then 'COMPLETED' when d.dsdecod is not null then 'DISCONTINUED' end as eosstt,
        case when d.dsdecod <> 'COMPLETED' then d.dsdecod end as dcsreas,
        case when d.dsdecod <> 'COMPLETED' then d.dsterm end as dcsreasp,
        s.source,
        s._source_file,
        s._source_row
    from subjects as s
    cross join completer_parameter as cp
    left join completers as c on c.usubjid = s.usubjid
    left join baselines as b on b.usubjid = s.usubjid
    left join exposure as x on x.usubjid = s.usubjid
    left join disposition as d on d.usubjid = s.usubjid
)

select * from final
order by usubjid
