-- analysis.adtte: ADaM-style time-to-event dataset - durability of response (PARAMCD LOSSRESP).
-- Grain: one row per responder at the primary visit (subject x parameter LOSSRESP).
-- Inputs: analysis.adqs, ref.study, ref.visits.
-- Rules, in words:
--   T1 The durability parameter is ref.study.durability_paramcd (manifest analysis.durability.paramcd,
--      default the primary parameter). Responders: randomized subjects whose ANL01FL record of that
--      parameter at the manifest's primary visit has CRIT1FL = 'Y' (the study's response criterion,
--      e.g. >= 30 % CAPS-5 reduction from baseline). Only responders have a record.
--   T2 Origin: the study day of that primary-visit record (STARTDY). Follow-up assessments: the
--      subject's ANL01FL records of the same parameter at visits of phase follow_up with a CRIT1FL
--      (a visit without a value is not an assessment), ordered by study day.
--   T3 Loss of response: the first follow-up assessment with CRIT1FL = 'N' that begins a run of
--      ref.study.durability_consecutive (default 1) such assessments in a row. AVAL = its study day -
--      STARTDY, CNSR = 0, EVNTDESC 'LOSS OF RESPONSE'.
--   T4 Otherwise censored (CNSR = 1) at the last follow-up assessment (AVAL = its day - STARTDY,
--      CNSDTDSC 'LAST FOLLOW-UP ASSESSMENT, STILL RESPONDING'), or at the origin with AVAL 0 when
--      the subject has no follow-up assessment (CNSDTDSC 'NO FOLLOW-UP ASSESSMENT').
--   T5 AVAL is in days (AVALU 'DAYS'); ADY is the study day of the event or censoring.
--   T6 A study whose schedule has no follow_up visit asks no durability question: no records.
with

study as (
    select * from ref.study
),

visits as (
    select * from ref.visits
),

adqs as (
    select * from analysis.adqs where anl01fl = 'Y' and trtp is not null
),

responders as (
    select
        q.study_id, q.usubjid, q.trtp, q.trtpn, q.paramcd as srcparam, q.avisit as srcvis, q.ady as startdy,
        q.crit1 as srccrit
    from adqs as q
    cross join study as st
    where q.paramcd = st.durability_paramcd and q.avisit = st.primary_visit and q.crit1fl = 'Y'
        and exists (select 1 from visits as v where v.phase = 'follow_up')
),

follow_up as (
    select
        q.usubjid, q.avisit, q.ady, q.crit1fl,
        row_number() over (partition by q.usubjid order by q.ady, q.avisitn) as k
    from adqs as q
    cross join study as st
    inner join visits as v on v.visit = q.avisit
    where q.paramcd = st.durability_paramcd and v.phase = 'follow_up' and q.crit1fl is not null
),

-- T3: an assessment starts a run when it and the next (consecutive - 1) assessments all miss the criterion
runs as (
    select
        f.usubjid, f.ady, f.avisit,
        count(g.k) filter (where g.crit1fl = 'N') as n_missed
    from follow_up as f
    cross join study as st
    inner join follow_up as g
        on g.usubjid = f.usubjid and g.k between f.k and f.k + st.durability_consecutive - 1
    where f.crit1fl = 'N'
    group by all
),

events as (
    select r.usubjid, arg_min(r.ady, r.ady) as event_dy, arg_min(r.avisit, r.ady) as event_visit
    from runs as r
    cross join study as st
    where r.n_missed = st.durability_consecutive
    group by r.usubjid
),

last_assessment as (
    select usubjid, max(ady) as last_dy, arg_max(avisit, ady) as last_visit, count(*) as n_fu
    from follow_up
    group by usubjid
),

final as (
    select
        r.study_id,
        r.usubjid,
        r.trtp,
        r.trtpn,
        'LOSSRESP' as paramcd,
        'Time to loss of response from the primary visit (days)' as param,
        1 as paramn,
        r.srcparam,
        r.srcvis,
        r.srccrit,
        r.startdy,
        coalesce(e.event_dy, l.last_dy, r.startdy) as ady,
        cast(coalesce(e.event_dy, l.last_dy, r.startdy) - r.startdy as double) as aval,
        'DAYS' as avalu,
        case when e.event_dy is not null then 0 else 1 end as cnsr,
        case when e.event_dy is not null then 'LOSS OF RESPONSE' end as evntdesc,
        case
            when e.event_dy is not null then null
            when l.last_dy is not null then 'LAST FOLLOW-UP ASSESSMENT, STILL RESPONDING'
            else 'NO FOLLOW-UP ASSESSMENT'
        end as cnsdtdsc,
        coalesce(e.event_visit, l.last_visit) as avisit,
        cast(coalesce(l.n_fu, 0) as integer) as n_fu
    from responders as r
    left join events as e on e.usubjid = r.usubjid
    left join last_assessment as l on l.usubjid = r.usubjid
)

select * from final
order by trtpn, usubjid
