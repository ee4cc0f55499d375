-- analysis.advs: ADaM-style vital-signs dataset (BDS) - blood pressure and pulse around each infusion,
--   with the pre-infusion baseline and the peak post-infusion change.
-- Grain: one row per analysed vital-sign record (subject x parameter x study day x time point), plus
--   one derived record per subject x parameter x infusion with DTYPE 'MAXIMUM' (the peak after the
--   start of the infusion).
-- Inputs: staging.vs_records, staging.vs_rows, staging.subjects, analysis.adex.
-- Rules, in words:
--   V1 PARAMCD SYSBP (systolic blood pressure, mmHg), DIABP (diastolic, mmHg), PULSE (beats/min);
--      records of accepted rows with a value only.
--   V2 The infusion of a record is the subject's ADEX infusion started on the record's study day;
--      AVISIT 'INFUSION n' and AVISITN n. A record on a day without an infusion has AVISIT 'DAY d'
--      and AVISITN NULL, and takes no baseline or change.
--   V3 ATPT is the time point as received (VSTPT, else VSELTM), ATPTN its number (VSTPTNUM, else the
--      elapsed minutes), AELTM the minutes from the start of the infusion (VSELTM; negative before).
--   V4 Baseline per infusion (ABLFL = 'Y'): the last pre-infusion record (AELTM <= 0, or a time point
--      named PRE... without AELTM) of the subject x parameter x infusion - the latest AELTM, then the
--      highest ATPTN, then the last file row. BASE is its AVAL on every record of that infusion.
--   V5 CHG = AVAL - BASE on post-infusion records (AELTM > 0, or a time point not named PRE...), NULL
--      on pre-infusion records and without a baseline.
--   V6 Peak: per subject x parameter x infusion with post-infusion values, a derived record DTYPE
--      'MAXIMUM', ATPT 'PEAK POST-INFUSION', AVAL the largest post-infusion AVAL (AELTM of its first
--      occurrence), CHG = AVAL - BASE (the peak change; NULL without baseline).
with

records as (
    select v.*
    from staging.vs_records as v
    inner join staging.vs_rows as r on r._source_file = v._source_file and r._source_row = v._source_row
    where r.status = 'accepted' and not v.is_skipped
),

subjects as (
    select * from staging.subjects
),

infusions as (
    select usubjid, aseq, astdy from analysis.adex
),

params as (
    select * from (values
        ('SYSBP', 'Systolic Blood Pressure (mmHg)', 1, 'mmHg'),
        ('DIABP', 'Diastolic Blood Pressure (mmHg)', 2, 'mmHg'),
        ('PULSE', 'Pulse Rate (beats/min)', 3, 'beats/min')
    ) as p(paramcd, param, paramn, avalu)
),

located as (
    select
        r.study_id,
        r.usubjid,
        s.arm as trta,
        s.armn as trtan,
        r.paramcd,
        p.param,
        p.paramn,
        i.aseq as infno,
        coalesce('INFUSION ' || i.aseq, 'DAY ' || r.vsdy) as avisit,
        i.aseq as avisitn,
        r.vsdy as ady,
        coalesce(r.vstpt, r.vseltm_raw) as atpt,
        coalesce(r.vstptnum, r.eltm_min) as atptn,
        r.eltm_min as aeltm,
        r.is_pre,
        r.aval,
        coalesce(r.unit, p.avalu) as avalu,
        r.source,
        r._source_file,
        r._source_row
    from records as r
    inner join subjects as s on s.usubjid = r.usubjid
    inner join params as p on p.paramcd = r.paramcd
    left join infusions as i on i.usubjid = r.usubjid and i.astdy = r.vsdy
),

baselines as (
    select
        l.usubjid, l.paramcd, l.infno, l._source_file, l._source_row, l.aval as base,
        row_number() over (
            partition by l.usubjid, l.paramcd, l.infno
            order by l.aeltm desc nulls last, l.atptn desc nulls last, l._source_file desc, l._source_row desc
        ) as pick
    from located as l
    where l.is_pre and l.infno is not null
),

observed as (
    select
        l.* exclude (is_pre),
        b.base,
        case when b._source_row is not null and l._source_file = b._source_file and l._source_row = b._source_row
            then 'Y' end as ablfl,
        case when not l.is_pre then l.aval - b.base end as chg,
        cast(null as varchar) as dtype,
        l.is_pre
    from located as l
    left join baselines as b on b.usubjid = l.usubjid and b.paramcd = l.paramcd and b.infno = l.infno and b.pick = 1
),

peaks as (
    select
        any_value(o.study_id) as study_id,
        o.usubjid,
        any_value(o.trta) as trta,
        any_value(o.trtan) as trtan,
        o.paramcd,
        any_value(o.param) as param,
        any_value(o.paramn) as paramn,
        o.infno,
        any_value(o.avisit) as avisit,
        any_value(o.avisitn) as avisitn,
        any_value(o.ady) as ady,
        'PEAK POST-INFUSION' as atpt,
        cast(null as double) as atptn,
        arg_max(o.aeltm, o.aval * 1e6 - coalesce(o.aeltm, 0)) as aeltm,
        max(o.aval) as aval,
        any_value(o.avalu) as avalu,
        cast(null as varchar) as source,
        cast(null as varchar) as _source_file,
        cast(null as bigint) as _source_row,
        any_value(o.base) as base,
        cast(null as varchar) as ablfl,
        max(o.aval) - any_value(o.base) as chg,
        'MAXIMUM' as dtype,
        false as is_pre
    from observed as o
    where not o.is_pre and o.infno is not null and o.aval is not null
    group by o.usubjid, o.paramcd, o.infno
),

unioned as (
    select * from observed
    union all by name
    select * from peaks
),

final as (
    select
        study_id,
        usubjid,
        trta,
        trtan,
        paramcd,
        param,
        paramn,
        infno,
        avisit,
        avisitn,
        ady,
        atpt,
        atptn,
        aeltm,
        aval,
        avalu,
        base,
        chg,
        ablfl,
        case when is_pre then 'Y' else 'N' end as prefl,
        'START OF INFUSION' as atptref,
        dtype,
        source,
        _source_file,
        _source_row
    from unioned
)

select * from final
order by usubjid, paramn, ady, dtype nulls first, aeltm
