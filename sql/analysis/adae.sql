-- analysis.adae: ADaM-style adverse-event dataset - every accepted AE with the treatment-emergent flag.
-- Grain: one row per accepted staging.ae_rows record of a subject in staging.subjects.
-- Inputs: staging.ae_rows, staging.subjects, analysis.adex, ref.study.
-- Rules, in words:
--   E1 AEDECOD / AEBODSYS are the MedDRA preferred term and system organ class as received (no
--      coding); AETERM, the verbatim term, only when the study cleared it for loading.
--   E2 ASTDY / AENDY are the onset and end study days (day 0 = first infusion of the schedule).
--      TRTSDY / TRTEDY are the subject's first and last infusion days from ADEX.
--   E3 TRTEMFL = 'Y' (treatment-emergent) when the subject received at least one infusion and the
--      onset is on or after the first infusion day (ASTDY >= TRTSDY; an AE on the day of the first
--      infusion counts: the data hold days, not clock times) and, when ref.study.teae_window_days is
--      set, no later than that many days after the last infusion. An AE without an onset day is
--      treatment-emergent when the subject was dosed (conservative). Otherwise 'N' (onset before the
--      first dose, after the window, or a subject never dosed).
--   E4 ASEV / ASEVN: severity MILD 1, MODERATE 2, SEVERE 3 (NULL when not given). AREL is the
--      causality as received (upper case), RELGR1 RELATED / NOT RELATED grouped (staging rule R6).
--   E5 INFNO: the number of the last infusion started on or before the onset day (NULL before the
--      first infusion or without onset day).
--   E6 First-occurrence flags among treatment-emergent AEs, for counting subjects (ordered by onset day,
--      then AESEQ, file and row): AOCCFL first TEAE of the subject, AOCCSFL first in the system organ
--      class, AOCCPFL first of the preferred term within the class. A subject with a preferred term
--      reported twice has one AOCCPFL record, so counts of subjects need no DISTINCT.
--   E7 SAFFL = 'Y' when the subject received at least one infusion (ADEX), TRTA the randomized arm.
with

ae as (
    select * from staging.ae_rows where status = 'accepted'
),

subjects as (
    select * from staging.subjects
),

dosing as (
    select usubjid, min(trtsdy) as trtsdy, min(trtedy) as trtedy from analysis.adex group by usubjid
),

infusions as (
    select usubjid, aseq, astdy from analysis.adex
),

study as (
    select * from ref.study
),

flagged as (
    select
        a.*,
        s.arm as trta,
        s.armn as trtan,
        d.trtsdy,
        d.trtedy,
        case when d.usubjid is not null then 'Y' else 'N' end as saffl,
        case
            when d.trtsdy is null then 'N'
            when a.aestdy is null then 'Y'
            when a.aestdy < d.trtsdy then 'N'
            when (select teae_window_days from study) is not null
                and a.aestdy > d.trtedy + (select teae_window_days from study) then 'N'
            else 'Y'
        end as trtemfl,
        (select max(i.aseq) from infusions as i where i.usubjid = a.usubjid and i.astdy <= a.aestdy) as infno
    from ae as a
    inner join subjects as s on s.usubjid = a.usubjid
    left join dosing as d on d.usubjid = a.usubjid
),

ordered as (
    select
        f.*,
        row_number() over (
            partition by f.usubjid, f.trtemfl order by f.aestdy nulls last, f.aeseq, f._source_file, f._source_row
        ) as n_subject,
        row_number() over (
            partition by f.usubjid, f.trtemfl, lower(f.aebodsys)
            order by f.aestdy nulls last, f.aeseq, f._source_file, f._source_row
        ) as n_soc,
        row_number() over (
            partition by f.usubjid, f.trtemfl, lower(f.aebodsys), lower(f.aedecod)
            order by f.aestdy nulls last, f.aeseq, f._source_file, f._source_row
        ) as n_pt
    from flagged as f
),

final as (
    select
        o.study_id,
        o.usubjid,
        o.trta,
        o.trtan,
        o.saffl,
        cast(o.aeseq as integer) as aeseq,
        o.aeterm,
        o.aedecod,
        o.aebodsys,
        o.aesev,
        o.aesev as asev,
        case o.aesev when 'MILD' then 1 when 'MODERATE' then 2 when 'SEVERE' then 3 end as asevn,
        upper(o.aerel) as aerel,
        upper(o.aerel) as arel,
        o.relgr1,
        o.aeser,
        o.aeout,
        o.aestdy as astdy,
        o.aeendy as aendy,
        o.trtsdy,
        o.trtedy,
        o.infno,
        o.trtemfl,
        case when o.trtemfl = 'Y' and o.n_subject = 1 then 'Y' end as aoccfl,
        case when o.trtemfl = 'Y' and o.n_soc = 1 then 'Y' end as aoccsfl,
        case when o.trtemfl = 'Y' and o.n_pt = 1 then 'Y' end as aoccpfl,
        o.source,
        o._source_file,
        o._source_row
    from ordered as o
)

select * from final
order by usubjid, astdy nulls last, aeseq, _source_file, _source_row
