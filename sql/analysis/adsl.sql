-- analysis.adsl: ADaM-style subject-level analysis dataset - arm, population flags and baseline covariates.
-- Grain: one row per subject of staging.subjects (the randomized subjects; for a study without a
--   randomization source, the subjects seen in the assessments).
-- Inputs: staging.subjects, analysis.adqs, ref.study, ref.scores, ref.visits, analysis.adex, staging.ds_rows.
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
--   L5 Population flags (ADaM IG): FASFL = 'Y' when randomized with a baseline and at least one
--      post-baseline value of the completer parameter (the MMRM's full analysis set); PPROTFL = 'Y'
--      when FASFL = 'Y' and the subject completed the primary visit (COMPLFL) - no protocol-deviation
--      data, so per protocol means completers.
--      SAFFL (safety population: randomized and received any study treatment): when the study has
--      exposure data (EX, analysis.adex has rows) 'Y' when the subject received at least one
--      infusion (any dose), else 'N' - a subject rated after baseline but without an EX record is
--      'N'; without exposure data, 'Y' when the subject has any post-baseline assessment of any
--      instrument (the assessments follow the first infusion: the closest evidence of a dose the
--      data allow), else 'N'. TRT01A = TRT01P when SAFFL = 'Y' (no exposure data record a different
--      treatment; blinded single-site trials dose as randomized), NULL otherwise.
--   L6 Disposition from the randomization source (a study without DS data): DCSREAS as given
--      (columns.discontinuation_reason); EOSSTT = 'DISCONTINUED' with a reason, 'COMPLETED' without
--      one when COMPLFL = 'Y', else NULL.
--   L4 Baseline covariates are kept as received: site, sex, age (years, numeric when given as a
--      number), age_band, race, ethnicity; other declared covariates stay in one JSON object
--      (covariates) because their names differ between studies.
--   L7 Exposure (when the study has EX data): TRTSDY / TRTEDY are the study days of the first and last
--      infusion (ADEX; study days, not dates - the warehouse holds no calendar dates), NINF the number
--      of infusions received (SAFFL from them: L5).
--   L8 Disposition (when the study has DS data; it wins over L6): the subject's last disposition event (DSCAT
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

fas as (
    select distinct q.usubjid
    from adqs as q
    cross join completer_parameter as cp
    where q.paramcd = cp.paramcd and q.chg is not null
),

dosed as (
    select distinct q.usubjid
    from adqs as q
    inner join ref.visits as v on v.visit = q.avisit
    cross join study as st
    inner join ref.visits as bv on bv.visit = st.baseline_visit
    where q.aval is not null and v.avisitn > bv.avisitn
),

baselines as (
    select q.usubjid, q.base
    from adqs as q
    cross join completer_parameter as cp
    where q.paramcd = cp.paramcd and q.ablfl = 'Y' and q.infno is null
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
        case when s.arm is not null and f.usubjid is not null then 'Y' else 'N' end as fasfl,
        -- L5 when the study has exposure data (EX), else dosing inferred from post-baseline assessments
        case
            when (select yes from has_exposure) then (case when s.arm is not null and x.usubjid is not null then 'Y' else 'N' end)
            when s.arm is not null and d.usubjid is not null then 'Y' else 'N'
        end as saffl,
        case when s.arm is not null and f.usubjid is not null and c.usubjid is not null then 'Y' else 'N' end as pprotfl,
        -- L5: TRT01A follows SAFFL (exposure when the study has EX data)
        case
            when (select yes from has_exposure) then (case when x.usubjid is not null then s.arm end)
            when d.usubjid is not null then s.arm
        end as trt01a,
        -- L8 / L6: the DS disposition event when the study has one for the subject, else the randomization source
        case
            when ds.dsdecod = 'COMPLETED' then 'COMPLETED'
            when ds.dsdecod is not null then 'DISCONTINUED'
            when s.dcsreas is not null then 'DISCONTINUED'
            when c.usubjid is not null then 'COMPLETED'
        end as eosstt,
        case when ds.dsdecod is not null then (case when ds.dsdecod <> 'COMPLETED' then ds.dsdecod end) else s.dcsreas end
            as dcsreas,
        case when ds.dsdecod <> 'COMPLETED' then ds.dsterm end as dcsreasp,
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
        s.source,
        s._source_file,
        s._source_row
    from subjects as s
    cross join completer_parameter as cp
    left join completers as c on c.usubjid = s.usubjid
    left join baselines as b on b.usubjid = s.usubjid
    left join fas as f on f.usubjid = s.usubjid
    left join dosed as d on d.usubjid = s.usubjid
    left join exposure as x on x.usubjid = s.usubjid
    left join disposition as ds on ds.usubjid = s.usubjid
)

select * from final
order by usubjid
