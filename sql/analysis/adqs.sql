-- analysis.adqs: ADaM-style questionnaire analysis dataset (BDS) - scores by visit with baseline, change and response.
-- Grain: one row per subject x parameter x visit x assessment (a visit assessed on two days has two
--   records; ANL01FL picks one), plus one derived 'AVERAGE' record per subject x parameter x visit
--   when repeated_assessments is mean and the visit has two or more valued records.
-- Inputs: analysis.scores, staging.subjects, ref.visits, ref.study, ref.scores, ref.diagnosis_criteria.
-- Rules, in words:
--   A0 Visits of phase infusion (manifest visits[].phase, e.g. CADSS before and 40 min after each
--      infusion) are time-point records: INFNO, ATPT and ATPTN (minutes from the start of the
--      infusion) come from the manifest visit. They never take the study baseline or its change
--      (A4-A7 are for the other records) and are analysed per infusion (A11); ANL01FL is 'N' on them
--      and ANL02FL marks them instead, so every by-visit (efficacy) analysis, which keys on ANL01FL
--      and on treatment-phase visits, leaves them out.
--   A1 AVISIT is the manifest's visit id in the warehouse (a stable key), AVISITN its position in the
--      manifest's visit list (baseline visit first when listed first). The submission dataset (ADQS
--      XPT and Define-XML, pipelines.tlf) carries AVISIT as the visit's description (manifest
--      visits[].label) per the ADaM IG, with the same AVISITN. ADY is the study day as staged: the recorded day, or the
--      visit's nominal day when none was recorded (day 0 = the manifest's baseline day; there is no
--      SDTM-style "no day 0" shift).
--   A2 TRTP is the randomized arm id (staging.subjects.arm); TRTPN its number in the manifest.
--   A3 ANL01FL: among the records of a subject x parameter x visit that have a value, one is 'Y':
--      repeated_assessments last = the one with the latest ADY, first = the earliest; ties (never
--      expected: one assessment per day) go to the first source file and row. mean = when two or more
--      records have a value, a derived record with DTYPE 'AVERAGE', AVAL = their mean (not rounded),
--      ADY = the latest of their days, N_ITEMS_MISSING = the largest of theirs, is 'Y' and the
--      observed records 'N'. Records without a value are always 'N', so a visit whose records are
--      all missing has no ANL01FL record.
--   A4 Baseline (ABLFL = 'Y' on at most one record per subject x parameter); a baseline is a
--      pre-dose rating: a record the source marks post-dose (PREDOSE = 'N', staging.assessment_rows)
--      is never the baseline.
--      baseline visit (default) = the ANL01FL record of the manifest's baseline visit unless it is
--      marked post-dose;
--      last_on_or_before_day0 = the observed record (not an AVERAGE) with a value, not marked
--      post-dose, and the latest ADY <= 0, any visit; ties on ADY go to the manifest's baseline
--      visit, then to a record marked pre-dose, then to the earlier visit (a rating at a later visit
--      of the same day is the post-dose one), then the first source file and row.
--      A subject x parameter without such a record has no ABLFL record and BASE, CHG, PCHG NULL.
--      A change scale (ref.scores.change_scale, CGI-I) never has a baseline.
--   A5 BASE = the baseline record's AVAL, on every record of the subject x parameter.
--   A6 Post-baseline = a record of a visit after the manifest's baseline visit (AVISITN greater)
--      that is not the ABLFL record, and, under last_on_or_before_day0, not earlier than the
--      baseline record (ADY >= the baseline's ADY; a record on the baseline's day at a later visit
--      is post-baseline): the baseline record and the analysed post-baseline records are disjoint
--      by construction, so a baseline never enters a change model with CHG = 0.
--      CHG = AVAL - BASE and PCHG = 100 * CHG / BASE on post-baseline records only; NULL on the
--      baseline record and on pre-baseline or baseline-visit records (ADaMIG: CHG is for
--      post-baseline records; a CHG of 0 on the baseline record would enter change models).
--      PCHG is NULL when BASE is 0 or missing; CHG is NULL when AVAL or BASE is missing.
--   A7 CRIT1FL (response) and CRIT2FL (remission) are judged on post-baseline records with an AVAL
--      and a BASE (a change scale needs no BASE), for parameters with the rule; NULL otherwise.
--      Response on a value set (CGI-I: 1 or 2) is AVAL in that set. Response: a reduction from baseline
--      of at least response_pct percent, i.e. 100 * (BASE - AVAL) >= response_pct * BASE (compared
--      without division, to 1e-9; BASE 0 is not evaluable). Defaults CAPS5TOT and PCL5TOT 30,
--      MADRSTOT 50. Remission: AVAL compared with remission_value by remission_op (PCL5TOT < 33,
--      MADRSTOT <= 10; CAPS-5 none). Thresholds come from ref.scores (manifest overrides applied).
--      CRIT1 / CRIT2 state the rule with its threshold on every record of the parameter.
--   A9 DTYPE is set only on derived records ('AVERAGE'); how an observed record's AVAL was obtained
--      is in AVALMETH ('ITEM SUM', 'PRORATED' missing items prorated, 'REPORTED' source total
--      without items; NULL without a value; AVERAGE records: the averaged records' method, 'MIXED' if they differ), per the ADaM IG (DTYPE is for records derived in the ADaM dataset).
--   A8 Diagnosis flags (sxcritfl, dxcutfl, dsmdxfl) are carried from analysis.scores; the AVERAGE
--      record has dxcutfl from its averaged value and no sxcritfl or dsmdxfl.
--   A10 CRIT3FL (loss of diagnosis), for the parameter that carries an instrument's diagnostic rule
--      (ref.diagnosis_criteria; CAPS5TOT: DSM-5 PTSD) when the study has any DSMDXFL value for it
--      and analysis.loss_of_diagnosis is true: judged on post-baseline records whose baseline record
--      (ABLFL) has DSMDXFL = 'Y' and whose own DSMDXFL is not NULL; 'Y' when DSMDXFL = 'N' (the
--      diagnosis is lost), 'N' when it is still met; NULL otherwise (no diagnosis at baseline, or
--      the diagnosis undetermined at baseline or at the visit). CRIT3 states the rule on every
--      record of the parameter.
--   A11 Per-infusion analysis of time-point records (phase infusion): ANL02FL = 'Y' on the one record
--      per subject x parameter x time-point visit that A3 would pick ('N' on the others; NULL on
--      records of other visits). Per-infusion baseline (BASETYPE 'PRE-INFUSION', ABLFL = 'Y'): among
--      the ANL02FL records of the subject x parameter x infusion whose time point is before the start
--      (ATPTN <= 0, or no ATPTN and a time point named PRE...) and not marked post-dose, the latest
--      (highest ATPTN, then the later visit in the manifest). BASE = its AVAL on every time-point
--      record of that infusion (NULL when the infusion has no pre-infusion rating); CHG = AVAL - BASE
--      and PCHG = 100 * CHG / BASE (BASE <> 0) on the post-infusion records (ATPTN > 0, or no ATPTN
--      and a name not starting PRE), NULL on pre-infusion records. BASETYPE is NULL on all other
--      records (their baseline is the study baseline). CRIT1FL/CRIT2FL/CRIT3FL are NULL on time-point records.
with

scores as (
    select sc.*, ar.predose
    from analysis.scores as sc
    left join staging.assessment_rows as ar
        on ar.instrument_id = sc.instrument_id and ar._source_file = sc._source_file
        and ar._source_row = sc._source_row and ar.source = sc.source
),

subjects as (
    select * from staging.subjects
),

visits as (
    select * from ref.visits
),

study as (
    select * from ref.study
),

score_rules as (
    select
        paramcd,
        any_value(instrument_id) as instrument_id,
        any_value(response_pct) as response_pct,
        any_value(remission_op) as remission_op,
        any_value(remission_value) as remission_value,
        any_value(cutoff_value) as cutoff_value,
        any_value(response_values) as response_values,
        any_value(change_scale) as change_scale
    from ref.scores
    group by paramcd
),

-- A10: parameters carrying a diagnostic rule that this study's data can judge
dx_rules as (
    select d.paramcd, any_value(d.rule_label) as rule_label
    from ref.diagnosis_criteria as d
    cross join study as st
    where st.loss_of_diagnosis
        and d.paramcd in (select paramcd from scores where dsmdxfl is not null)
    group by d.paramcd
),

-- PARAMN numbers the parameters of the study's instruments (those analysis.scores has): efficacy
-- instruments first, then safety scales (ref.instruments.role, e.g. CADSS, BPRS), each by instrument
-- id and the definition's order, so adding an instrument definition renumbers no study and adding a
-- safety scale to a study renumbers none of its efficacy parameters
param_order as (
    select
        s.paramcd,
        cast(dense_rank() over (order by coalesce(i.role, 'efficacy') = 'safety', s.instrument_id, s.paramn) as integer) as paramn
    from (
        select distinct instrument_id, paramcd, paramn from ref.scores
        where instrument_id in (select distinct instrument_id from scores)
    ) as s
    left join (select distinct instrument_id, role from ref.instruments) as i on i.instrument_id = s.instrument_id
),

observed as (
    select
        s.study_id,
        s.usubjid,
        s.paramcd,
        s.param,
        s.instrument as parcat1,
        s.visit as avisit,
        s.avisitn,
        s.study_day as ady,
        s.aval,
        s.n_items,
        s.n_items_missing,
        cast(null as varchar) as dtype,
        case when s.aval is not null then coalesce(s.dtype, 'ITEM SUM') end as avalmeth,
        s.predose,
        s.sxcritfl,
        s.dxcutfl,
        s.dsmdxfl,
        s.source,
        s._source_file,
        s._source_row
    from scores as s
),

-- A3
ranked as (
    select
        o.*,
        count(o.aval) over per_visit as n_valued,
        row_number() over (
            partition by o.usubjid, o.paramcd, o.avisit
            order by
                o.aval is null,
                case when st.repeated_rule = 'first' then o.ady end asc,
                case when st.repeated_rule <> 'first' then o.ady end desc,
                o._source_file,
                o._source_row
        ) as pick,
        st.repeated_rule
    from observed as o
    cross join study as st
    window per_visit as (partition by o.usubjid, o.paramcd, o.avisit)
),

averages as (
    select
        any_value(r.study_id) as study_id,
        r.usubjid,
        r.paramcd,
        any_value(r.param) as param,
        any_value(r.parcat1) as parcat1,
        r.avisit,
        any_value(r.avisitn) as avisitn,
        max(r.ady) as ady,
        avg(r.aval) as aval,
        any_value(r.n_items) as n_items,
        max(r.n_items_missing) as n_items_missing,
        'AVERAGE' as dtype,
        case when count(distinct r.avalmeth) = 1 then any_value(r.avalmeth) else 'MIXED' end as avalmeth,
        case when bool_and(r.predose = 'Y') then 'Y' when bool_or(r.predose = 'N') then 'N' end as predose,
        cast(null as varchar) as sxcritfl,
        cast(null as varchar) as dsmdxfl,
        case
            when any_value(sr.cutoff_value) is null then null
            when avg(r.aval) >= any_value(sr.cutoff_value) then 'Y'
            else 'N'
        end as dxcutfl,
        cast(null as varchar) as source,
        cast(null as varchar) as _source_file,
        cast(null as bigint) as _source_row,
        'Y' as anl01fl
    from ranked as r
    inner join score_rules as sr on sr.paramcd = r.paramcd
    where r.repeated_rule = 'mean' and r.n_valued >= 2 and r.aval is not null
    group by r.usubjid, r.paramcd, r.avisit
),

picked as (
    select
        * exclude (n_valued, pick, repeated_rule),
        case
            when aval is null then 'N'
            when repeated_rule = 'mean' and n_valued >= 2 then 'N'
            when pick = 1 then 'Y'
            else 'N'
        end as anl01fl
    from ranked
    union all by name
    select * from averages
),

-- A0, A11: time-point records are flagged for the per-infusion analysis (ANL02FL), not the by-visit one
records as (
    select
        p.* exclude (anl01fl),
        case when v.infusion is null then p.anl01fl else 'N' end as anl01fl,
        case when v.infusion is not null then p.anl01fl end as anl02fl,
        v.infusion as infno,
        v.infusion is not null and (
            v.elapsed_min <= 0 or (v.elapsed_min is null and upper(coalesce(v.timepoint, '')) like 'PRE%')
        ) as pre_infusion
    from picked as p
    left join visits as v on v.visit = p.avisit
),

-- A11
infusion_baseline as (
    select r.usubjid, r.paramcd, r.infno, r.avisit, r.ady, r.dtype, r._source_file, r._source_row, r.aval as ibase
    from (
        select
            r.*,
            row_number() over (
                partition by r.usubjid, r.paramcd, r.infno
                order by v.elapsed_min desc nulls last, r.avisitn desc
            ) as k
        from records as r
        inner join visits as v on v.visit = r.avisit
        where r.pre_infusion and r.anl02fl = 'Y' and r.predose is distinct from 'N'
    ) as r
    where r.k = 1
),

-- A4
baseline_candidates as (
    select
        r.*,
        row_number() over (
            partition by r.usubjid, r.paramcd
            order by r.ady desc, r.avisit = st.baseline_visit desc, r.predose = 'Y' desc nulls last,
                r.avisitn asc, r._source_file, r._source_row
        ) as latest
    from records as r
    cross join study as st
    where st.baseline_rule = 'last_on_or_before_day0'
        and r.aval is not null and r.ady <= 0 and r.dtype is distinct from 'AVERAGE'
        and r.predose is distinct from 'N' and r.infno is null
),

-- A4: a change scale (CGI-I) rates change itself and has no baseline
no_baseline as (
    select paramcd from score_rules where change_scale
),

baseline as (
    select r.usubjid, r.paramcd, r.avisit, r.ady, r.dtype, r._source_file, r._source_row, r.aval as base,
        r.dsmdxfl as base_dsmdxfl
    from records as r
    cross join study as st
    where st.baseline_rule = 'visit' and r.avisit = st.baseline_visit and r.anl01fl = 'Y'
        and r.predose is distinct from 'N'
        and r.paramcd not in (select paramcd from no_baseline)
    union all
    select usubjid, paramcd, avisit, ady, dtype, _source_file, _source_row, aval as base, dsmdxfl as base_dsmdxfl
    from baseline_candidates
    where latest = 1 and paramcd not in (select paramcd from no_baseline)
),

flagged as (
    select
        r.*,
        case when r.infno is null then b.base else ib.ibase end as base,
        case when r.infno is not null then 'PRE-INFUSION' end as basetype,
        b.base_dsmdxfl,
        b.ady as base_ady,
        case
            when r.infno is not null then
                case
                    when ib.usubjid is not null and {{ same_record('r', 'ib') }} then 'Y'
                end
            when b.usubjid is not null and r.ady is not distinct from b.ady and {{ same_record('r', 'b') }} then 'Y'
        end as ablfl,
        bv.avisitn as baseline_avisitn
    from records as r
    left join baseline as b on b.usubjid = r.usubjid and b.paramcd = r.paramcd
    left join infusion_baseline as ib on ib.usubjid = r.usubjid and ib.paramcd = r.paramcd and ib.infno = r.infno
    cross join (select v.avisitn from visits as v inner join study as st on st.baseline_visit = v.visit) as bv
),

with_base as (
    select
        f.* exclude (base_ady, baseline_avisitn),
        f.infno is null
            and f.avisitn > f.baseline_avisitn
            and f.ablfl is null
            and (st.baseline_rule = 'visit' or f.base_ady is null or f.ady is null or f.ady >= f.base_ady)
            as post_baseline,
        f.infno is not null and not f.pre_infusion as post_infusion
    from flagged as f
    cross join study as st
),

-- A6, A7
derived as (
    select
        w.*,
        case when w.post_baseline or w.post_infusion then w.aval - w.base end as chg,
        case when (w.post_baseline or w.post_infusion) and w.base <> 0 then 100 * (w.aval - w.base) / w.base end as pchg,
        sr.response_pct,
        sr.remission_op,
        sr.remission_value,
        sr.response_values,
        w.post_baseline and w.aval is not null and (w.base is not null or sr.change_scale) as evaluable,
        dr.rule_label as dx_rule_label
    from with_base as w
    inner join score_rules as sr on sr.paramcd = w.paramcd
    left join dx_rules as dr on dr.paramcd = w.paramcd
),

final as (
    select
        d.study_id,
        d.usubjid,
        s.arm as trtp,
        s.armn as trtpn,
        d.paramcd,
        d.param,
        p.paramn,
        d.parcat1,
        d.avisit,
        d.avisitn,
        d.infno,
        v.timepoint as atpt,
        v.elapsed_min as atptn,
        d.ady,
        d.aval,
        d.base,
        d.basetype,
        d.chg,
        d.pchg,
        d.ablfl,
        d.anl01fl,
        d.anl02fl,
        d.n_items,
        d.n_items_missing,
        d.dtype,
        d.avalmeth,
        d.predose,
        case
            when d.response_pct is not null then
                d.paramcd || ' reduction from baseline >= ' || format('{:g}', d.response_pct) || '%'
            when d.response_values is not null then
                d.paramcd || ' in ' || array_to_string(list_transform(d.response_values, x -> format('{:g}', x)), ' or ')
        end as crit1,
        case
            when d.response_values is not null and d.response_pct is null then
                case when d.evaluable then (case when list_contains(d.response_values, d.aval) then 'Y' else 'N' end) end
            when d.response_pct is null or not d.evaluable or d.base = 0 then null
            when round(100 * (d.base - d.aval) - d.response_pct * d.base, 9) >= 0 then 'Y'
            else 'N'
        end as crit1fl,
        case when d.remission_op is not null then
            d.paramcd || ' ' || d.remission_op || ' ' || format('{:g}', d.remission_value)
        end as crit2,
        case
            when d.remission_op is null or not d.evaluable then null
            when d.remission_op = '<' and d.aval < d.remission_value then 'Y'
            when d.remission_op = '<=' and d.aval <= d.remission_value then 'Y'
            when d.remission_op = '>' and d.aval > d.remission_value then 'Y'
            when d.remission_op = '>=' and d.aval >= d.remission_value then 'Y'
            else 'N'
        end as crit2fl,
        case when d.dx_rule_label is not null then
            d.dx_rule_label || ' met at baseline, not met at the visit'
        end as crit3,
        case
            when d.dx_rule_label is null or not d.post_baseline then null
            when d.base_dsmdxfl = 'Y' and d.dsmdxfl = 'N' then 'Y'
            when d.base_dsmdxfl = 'Y' and d.dsmdxfl = 'Y' then 'N'
        end as crit3fl,
        d.sxcritfl,
        d.dxcutfl,
        d.dsmdxfl,
        d.source,
        d._source_file,
        d._source_row
    from derived as d
    left join subjects as s on s.usubjid = d.usubjid
    left join param_order as p on p.paramcd = d.paramcd
    left join visits as v on v.visit = d.avisit
)

select * from final
order by usubjid, paramn, avisitn, ady, dtype nulls first
