-- analysis.scores: every score (total, DSM-5 cluster, dissociation) of every assessment, from its items.
-- Grain: one row per subject x instrument x visit x study day (an assessment) x score (PARAMCD).
-- Inputs: staging.item_responses, staging.assessment_rows, staging.reported_totals, ref.scores, ref.symptom_rules,
--   ref.diagnosis_criteria, ref.study.
-- Rules, in words (the scores and their items are data: ref.scores, from pipelines/instruments/*.yaml):
--   S1 An assessment is one subject, instrument, visit and study day. Several source rows may make it
--      up (long layouts: one row per item); an item received twice with the same value counts once
--      (staging quarantines copies that disagree).
--   S2 An item is missing when it is empty, a missing-value code, or not received at all;
--      n_items is the number of items the score sums, n_items_missing how many of them are missing.
--   S3 Default (missing_items.method none): the score is the sum of its components, and missing when
--      any of its items is missing. A component is one item, or a max_of group of the definition
--      (QIDS-SR16: sleep items 1-4) that counts once, by its largest item, when all its items are
--      answered. A score without max_of groups is the plain sum of its items.
--   S4 Prorating (method prorate): the score's components are split into groups - scope scale: one
--      group, all components of the score; scope cluster: one group per DSM-5 cluster of the score's
--      items (a scale without clusters, such as MADRS, is one group). A group with no incomplete
--      component counts its sum. A group with 1..max_missing incomplete components and at least one
--      complete one counts the mean of its complete components times its component count (for a
--      score of single items: the mean of its answered items times its item count). A group with
--      more makes the score missing. The score is the sum of its groups (so a total under scope cluster is prorated
--      cluster by cluster and summed), rounded once at the end as configured: none (kept exact),
--      half_up (x.5 goes up), floor, ceil; rounding compares at 1e-9 so binary fractions cannot
--      flip a half. Such a score has dtype = 'PRORATED'; a score without missing items is never
--      rounded or marked.
--   S5 Reported totals: when the assessment carries a total the source reported (NDA pcl5_total,
--      madrstot, caps_sum_bcdetotal, an SDTM derived record, a mapped total column) it is kept in
--      reported_total on the instrument's total score. The item-derived score wins. When none of the
--      total's items was answered (a totals-only source), aval is the reported total and
--      dtype = 'REPORTED'. total_check compares them: agrees / differs (items complete, sum differs)
--      / items_incomplete (some items answered, not all: the reported total is not used) / reported_only.
--   S6 Which records exist: every non-optional score of an assessment with at least one answered
--      item of the instrument (so an unscoreable score shows as aval NULL with its missing count);
--      the total score also when the assessment carries a reported total (totals-only sources); an
--      optional score (CAPS-5 dissociation, items 29+30) only when one of its own items was answered.
--   S7 Diagnosis flags, on the total score's record only (NULL on the others):
--      sxcritfl - the instrument's DSM-5 symptom-count rule (ref.symptom_rules; PCL-5 and CAPS-5:
--        an item rated >= 2 is a symptom; >= 1 B, >= 1 C, >= 2 D and >= 2 E). For PCL-5 this is the
--        provisional diagnosis by the DSM-5 rule; for CAPS-5 it is "symptom criteria B-E met" (a
--        CAPS-5 diagnosis also needs criteria A, F and G). Judged on the answered items: 'Y' when
--        met, 'N' when it could not be met even if every missing item were a symptom, NULL when the
--        missing items decide it (and for totals-only records).
--      dxcutfl - the score is at or above the instrument's cut-off (ref.scores.cutoff_value: the
--        definition's diagnosis.cutoff, or the manifest's analysis.cutoffs; PCL-5 33): 'Y'/'N', NULL
--        when the score is missing.
--   S8 dsmdxfl - the instrument's diagnostic rule (ref.diagnosis_criteria, the definition's
--      diagnosis.rule; CAPS-5: DSM-5 PTSD), on the records of the rule's score (the total) only:
--      each criterion is met when at least min_count of its items are rated >= min_value (CAPS-5,
--      Weathers et al. 2018: B >= 1 of items 1-5 at severity >= 2, C >= 1 of 6-7, D >= 2 of 8-14,
--      E >= 2 of 15-20, F item 22 duration > 1 month = 1 (yes), G >= 1 of items 23-25 (distress,
--      social, occupational impairment) at >= 2; criterion A is not re-rated: the index trauma is
--      established at screening). 'Y' when every criterion is met on the answered items, 'N' when a
--      criterion could not be met even if every missing item of it counted, NULL when missing items
--      decide it. Only assessments with at least one of the rule's required items answered (CAPS-5:
--      22-25) get a flag; a severity-only administration (items 1-20) has dsmdxfl NULL. The rule's
--      items are never part of a score unless a score lists them (CAPS-5 21-25 are in none: they
--      never enter the 0-80 total or the cluster sums).
with

-- not materialized: read twice below, and a 50,000-subject study's 13 M ratings held in memory
-- ran DuckDB out of its 1 GB
responses as not materialized (
    select row_id, item, value from staging.item_responses
),

assessment_rows as (
    select * from staging.assessment_rows
),

reported_rows as (
    select * from staging.reported_totals
),

score_items as (
    select * from ref.scores
),

symptom_rules as (
    select * from ref.symptom_rules
),

study as (
    select * from ref.study
),

diagnosis_criteria as (
    select * from ref.diagnosis_criteria
),

-- The accepted assessment rows that have item ratings, with their number of answered items: the
-- ratings are grouped by their integer row number only; the row's subject, visit and lineage strings
-- are joined once per row, not grouped once per rating.
item_rows as (
    select
        r.row_id, r.study_id, r.usubjid, r.instrument_id, r.instrument, r.visit, r.avisitn, r.study_day,
        r.source, r._source_file, r._source_row, n.n_answered
    from (select row_id, count(value) as n_answered from responses group by row_id) as n
    inner join assessment_rows as r on r.row_id = n.row_id
),

item_assessments as (
    select
        study_id, usubjid, instrument_id, instrument, visit, avisitn, study_day,
        sum(n_answered) > 0 as has_answers,
        -- the lineage of the first row by file and row (first(... order by) keeps every row of
        -- a group in memory; rows tied on file and row are one raw row, so any of them will do)
        arg_min_null(source, (_source_file, _source_row)) as source,
        min(_source_file) as _source_file,
        arg_min_null(_source_row, (_source_file, _source_row)) as _source_row
    from item_rows
    group by all
),

reported as (
    select
        study_id, usubjid, instrument_id, instrument, visit, avisitn, study_day,
        max(reported_total) as reported_total,
        {{ first_lineage('r_source', 'r_source_file', 'r_source_row') }}
    from reported_rows
    group by all
),

-- The assessments, numbered (aid): every per-item step below groups and joins on the number
-- instead of the subject/instrument/visit/day strings, so a 50,000-subject study's tens of millions
-- of item x score rows stay small enough for DuckDB's memory limit (notes: scale2).
-- materialized: aid must be the same number in every step that reads it
assessments as materialized (
    select
        cast(row_number() over () as integer) as aid,
        study_id, usubjid, instrument_id, instrument, visit, avisitn, study_day,
        coalesce(i.has_answers, false) as has_items,
        r.r_source_file is not null as has_reported,
        r.reported_total,
        coalesce(i.source, r.r_source) as source,
        coalesce(i._source_file, r.r_source_file) as _source_file,
        coalesce(i._source_row, r.r_source_row) as _source_row,
        r.r_source_file as reported_source_file,
        r.r_source_row as reported_source_row
    from item_assessments as i
    full join reported as r using (study_id, usubjid, instrument_id, instrument, visit, avisitn, study_day)
),

-- the items any score or diagnostic rule reads, numbered (iid); no step below reads another item
scored_items as (
    select instrument_id, item, cast(row_number() over (order by instrument_id, item) as integer) as iid
    from (
        select instrument_id, item from score_items
        union
        select instrument_id, item from diagnosis_criteria
    )
    where item is not null
),

-- each rated row's assessment (rows of one subject, instrument, visit and day are one assessment)
row_assessment as (
    select r.row_id, r.instrument_id, a.aid
    from item_rows as r
    inner join assessments as a
        on a.usubjid = r.usubjid and a.instrument_id = r.instrument_id and a.visit = r.visit
        and a.study_day = r.study_day
),

-- S1: one value per assessment x answered item (an item received twice counts once, by its largest
-- value; an item never answered is left out: every step below counts answered items)
assessment_items as (
    select ra.aid, i.iid, max(r.value) as value
    from responses as r
    inner join row_assessment as ra on ra.row_id = r.row_id
    inner join scored_items as i on i.instrument_id = ra.instrument_id and i.item = r.item
    where r.value is not null
    group by ra.aid, i.iid
),

score_defs as (
    select
        instrument_id, paramcd,
        any_value(param) as param,
        any_value(paramn) as paramn,
        any_value(is_total) as is_total,
        any_value(optional) as optional,
        any_value(n_items) as n_items,
        any_value(cutoff_value) as cutoff_value
    from score_items
    group by all
),

-- S4: the components of each score (an item alone, or a max_of group counted once, by its largest
-- item) and the proration group of each component
component_list as (
    select
        s.instrument_id,
        s.paramcd,
        s.component,
        count(*) as n_c,
        case when any_value(st.missing_items_scope) = 'cluster' then coalesce(min(s.cluster), '(scale)') else '(scale)' end as grp
    from score_items as s
    cross join study as st
    group by s.instrument_id, s.paramcd, s.component
),

-- numbered: components (cid) and their proration groups (gid)
score_components as (
    select
        *,
        cast(row_number() over (order by instrument_id, paramcd, component) as integer) as cid,
        cast(dense_rank() over (order by instrument_id, paramcd, grp) as integer) as gid
    from component_list
),

group_sizes as (
    select instrument_id, paramcd, grp, gid, count(*) as n_g, sum(n_c) as items_g
    from score_components
    group by all
),

-- each item's components (cid): a component of one item is that item's answer as it is; only a
-- max_of group of several items is aggregated (most components are single items, so the largest
-- step is a join, not a grouping)
item_components as (
    select c.cid, c.n_c, i.iid
    from score_items as s
    inner join score_components as c
        on c.instrument_id = s.instrument_id and c.paramcd = s.paramcd and c.component = s.component
    inner join scored_items as i on i.instrument_id = s.instrument_id and i.item = s.item
),

component_answers as (
    select a.aid, ic.cid, 1 as a_c, a.value as v_c
    from assessment_items as a
    inner join item_components as ic on ic.iid = a.iid
    where ic.n_c = 1
    union all
    select a.aid, ic.cid, count(*) as a_c, max(a.value) as v_c
    from assessment_items as a
    inner join item_components as ic on ic.iid = a.iid
    where ic.n_c > 1
    group by a.aid, ic.cid
),

group_answers as (
    select
        ca.aid, c.gid,
        count(*) filter (where ca.a_c = c.n_c) as a_g,
        sum(ca.v_c) filter (where ca.a_c = c.n_c) as s_g,
        sum(ca.a_c) as items_answered_g
    from component_answers as ca
    inner join score_components as c on c.cid = ca.cid
    group by ca.aid, c.gid
),

group_values as (
    select
        a.aid, gs.paramcd, gs.grp, gs.n_g, gs.items_g,
        coalesce(ga.a_g, 0) as a_g,
        coalesce(ga.items_answered_g, 0) as items_answered_g,
        ga.s_g,
        case
            when coalesce(ga.a_g, 0) = gs.n_g then ga.s_g
            when st.missing_items_method = 'prorate' and ga.a_g > 0 and gs.n_g - ga.a_g <= st.missing_items_max
                then ga.s_g * gs.n_g / ga.a_g
        end as v_g
    from assessments as a
    inner join group_sizes as gs on gs.instrument_id = a.instrument_id
    cross join study as st
    left join group_answers as ga on ga.aid = a.aid and ga.gid = gs.gid
),

score_values as (
    select
        aid, paramcd,
        cast(sum(items_g) as integer) as n_items,
        cast(sum(items_g - items_answered_g) as integer) as n_items_missing,
        cast(sum(items_answered_g) as integer) as n_answered,
        sum(s_g) as answered_sum,
        case when count(*) filter (where v_g is null) = 0 then sum(v_g) end as unrounded,
        count(*) filter (where v_g is null) = 0 and sum(n_g - a_g) > 0 as prorated
    from group_values
    group by aid, paramcd
),

-- S7 and S8 are one kind of rule: criteria, each met when at least min_count of its items are rated
-- >= min_value. The symptom-count rule's criteria are the DSM-5 clusters of the instrument's scored
-- items (min_value = item_threshold, min_count = min_items); the diagnostic rule's are its own.
-- `flag` names the column a criterion decides.
criteria_items as (
    select distinct
        'sxcritfl' as flag, s.instrument_id, s.cluster as criterion, i.iid,
        r.item_threshold as min_value, r.min_items as min_count, cast(null as varchar) as paramcd
    from score_items as s
    inner join symptom_rules as r on r.instrument_id = s.instrument_id and r.cluster = s.cluster
    inner join scored_items as i on i.instrument_id = s.instrument_id and i.item = s.item
    union all
    select 'dsmdxfl', d.instrument_id, d.criterion, i.iid, d.min_value, d.min_count, d.paramcd
    from diagnosis_criteria as d
    inner join scored_items as i on i.instrument_id = d.instrument_id and i.item = d.item
    where d.criterion is not null
),

criteria_sizes as (
    select
        flag, instrument_id, criterion,
        any_value(paramcd) as paramcd, any_value(min_count) as min_count, count(*) as n_c
    from criteria_items
    group by all
),

criteria_answers as (
    select
        a.aid, c.flag, c.criterion,
        count(*) as answered_c,
        count(*) filter (where a.value >= c.min_value) as met_c
    from assessment_items as a
    inner join criteria_items as c on c.iid = a.iid
    group by a.aid, c.flag, c.criterion
),

-- which assessments a rule judges: the symptom rule every assessment of its instrument; the
-- diagnostic rule those with at least one of its required items answered (S8)
judged as (
    select distinct a.aid, a.instrument_id, 'sxcritfl' as flag
    from assessments as a
    inner join criteria_sizes as s on s.instrument_id = a.instrument_id and s.flag = 'sxcritfl'
    union all
    select distinct a.aid, d.instrument_id, 'dsmdxfl'
    from assessment_items as a
    inner join scored_items as i on i.iid = a.iid
    inner join diagnosis_criteria as d on d.instrument_id = i.instrument_id and d.item = i.item and d.requires
),

criteria_flags as (
    select
        j.aid, j.flag, any_value(s.paramcd) as paramcd,
        {{ all_criteria_met('c.met_c', 'c.answered_c', 's.n_c', 's.min_count') }} as met
    from judged as j
    inner join criteria_sizes as s on s.flag = j.flag and s.instrument_id = j.instrument_id
    left join criteria_answers as c on c.aid = j.aid and c.flag = j.flag and c.criterion = s.criterion
    group by j.aid, j.flag
),

scored as (
    select
        a.*,
        d.paramcd,
        d.param,
        d.paramn,
        d.is_total,
        d.cutoff_value,
        coalesce(v.n_items, d.n_items) as n_items,
        coalesce(v.n_items_missing, d.n_items) as n_items_missing,
        coalesce(v.n_answered, 0) as n_answered,
        v.answered_sum,
        case
            when not v.prorated then v.unrounded
            when st.missing_items_rounding = 'half_up' then floor(round(v.unrounded, 9) + 0.5)
            when st.missing_items_rounding = 'floor' then floor(round(v.unrounded, 9))
            when st.missing_items_rounding = 'ceil' then ceil(round(v.unrounded, 9))
            else v.unrounded
        end as item_score,
        v.prorated
    from assessments as a
    inner join score_defs as d on d.instrument_id = a.instrument_id
    cross join study as st
    left join score_values as v on v.aid = a.aid and v.paramcd = d.paramcd
    -- S6
    where (not d.optional and (a.has_items or (d.is_total and a.has_reported)))
        or (d.optional and coalesce(v.n_answered, 0) > 0)
),

valued as (
    select
        s.*,
        case
            when s.item_score is not null then s.item_score
            when s.is_total and s.n_answered = 0 then s.reported_total
        end as aval,
        case
            when s.item_score is not null and s.prorated then 'PRORATED'
            when s.item_score is null and s.is_total and s.n_answered = 0 and s.reported_total is not null then 'REPORTED'
        end as dtype
    from scored as s
),

-- materialized: the rows are built first and then sorted; sorting in the same pipeline as the joins
-- above held their hash tables and the sort's buffers at once, which ran a 50,000-subject study
-- (2.7 M rows) out of DuckDB's 1 GB memory limit (notes: scale2)
final as materialized (
    select
        v.study_id,
        v.usubjid,
        v.instrument_id,
        v.instrument,
        v.visit,
        v.avisitn,
        v.study_day,
        v.paramcd,
        v.param,
        v.paramn,
        v.is_total,
        v.aval,
        v.n_items,
        v.n_items_missing,
        v.dtype,
        case when v.n_items_missing = 0 then v.answered_sum end as item_sum,
        case when v.is_total then v.reported_total end as reported_total,
        case
            when not v.is_total or v.reported_total is null then null
            when v.n_items_missing = 0 and v.answered_sum = v.reported_total then 'agrees'
            when v.n_items_missing = 0 then 'differs'
            when v.n_answered > 0 then 'items_incomplete'
            else 'reported_only'
        end as total_check,
        case when v.is_total then f.met end as sxcritfl,
        case
            when not v.is_total or v.cutoff_value is null or v.aval is null then null
            when v.aval >= v.cutoff_value then 'Y'
            else 'N'
        end as dxcutfl,
        x.met as dsmdxfl,
        v.source,
        v._source_file,
        v._source_row,
        case when v.is_total then v.reported_source_file end as reported_source_file,
        case when v.is_total then v.reported_source_row end as reported_source_row
    from valued as v
    left join criteria_flags as f on f.aid = v.aid and f.flag = 'sxcritfl'
    left join criteria_flags as x on x.aid = v.aid and x.flag = 'dsmdxfl' and x.paramcd = v.paramcd
)

select * from final
order by usubjid, instrument_id, avisitn, study_day, paramn
