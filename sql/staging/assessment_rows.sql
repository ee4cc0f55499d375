-- staging.assessment_rows: the decision on every raw assessment row.
-- Grain: one row per raw.<instrument> row (instrument x source file x source row).
-- status: 'accepted' (its ratings go on to staging.item_responses), 'quarantined' (to
--   qc.quarantine with the reason) or 'skipped' (a wide row with no cell of this instrument
--   filled in, such as a REDCap event at which the form was not administered).
-- Rules, in words:
--   R1 the subject id must be present;
--   R2 the visit label must be one of the manifest's (visits[].id/label/codes, recode.visit);
--   R3 when the study has a randomization list, the subject must be on it (accepted rows);
--   R4 every item value must be missing or a whole number within the item range, and a reported
--      total must be a non-negative number (staging.assessment_items says why not);
--   R5 long layouts: every item code must be one of the instrument's items or its total;
--   R6 the same subject, instrument, visit, study day and item received more than once with the
--      same value is an exact duplicate: the first copy (by file, row) is kept and later copies are
--      quarantined; received with different values it is a conflict and every copy is quarantined.
--      Records of one visit on different recorded days are repeated assessments, not duplicates.
-- Inputs: staging.assessment_items, staging.randomization_rows, staging.subjects, ref.visits.
with

items as (
    select * from staging.assessment_items
),

has_randomization as (
    select count(*) > 0 as yes from staging.randomization_rows
),

visit_list as (
    select string_agg(visit, ', ' order by avisitn) as visits from ref.visits
),

row_checks as (
    select
        i.instrument_id,
        i._source_file,
        i._source_row,
        any_value(i.study_id) as study_id,
        any_value(i.instrument) as instrument,
        any_value(i.source) as source,
        any_value(i.usubjid) as usubjid,
        any_value(i.visit_raw) as visit_raw,
        any_value(i.visit) as visit,
        any_value(i.study_day) as study_day,
        count(*) filter (where i.value_raw is not null and trim(i.value_raw) <> '') as n_filled,
        string_agg(
            i.instrument || ' ' || coalesce('item ' || i.item, 'total')
            || coalesce(' (' || i.item_code_raw || ')', '') || ': ' || i.value_problem,
            '; ' order by i.item nulls last
        ) filter (where i.value_problem is not null) as value_problems,
        string_agg(distinct '''' || i.item_code_raw || '''', ', ') filter (where i.record_type = 'unmapped') as unknown_codes
    from items as i
    group by i.instrument_id, i._source_file, i._source_row
),

basic as (
    select
        r.*,
        concat_ws(
            '; ',
            case when r.usubjid is null or r.usubjid = '' then 'subject id is empty' end,
            case when r.visit is null then
                'visit ' || coalesce('''' || r.visit_raw || '''', '(empty)') || ' is not a visit of the manifest ('
                || (select visits from visit_list) || '); map it under recode.visit or visits[].codes'
            end,
            case when (select yes from has_randomization) and r.usubjid is not null and r.usubjid <> ''
                and r.usubjid not in (select usubjid from staging.subjects) then
                'subject ' || r.usubjid || ' is not in the randomization list'
            end,
            r.value_problems,
            case when r.unknown_codes is not null then
                'item code(s) ' || r.unknown_codes || ' are not ' || r.instrument || ' items; map them under items.codes'
            end
        ) as basic_reason
    from row_checks as r
),

-- R6 runs on the items of rows that pass R1-R5, so a broken row cannot make a good one look duplicated.
candidates as (
    select
        i.*,
        coalesce(cast(i.value as varchar), '(missing)') as value_key
    from items as i
    inner join basic as b
        on b.instrument_id = i.instrument_id and b._source_file = i._source_file and b._source_row = i._source_row
    where b.basic_reason = '' and i.record_type in ('item', 'total') and b.n_filled > 0
),

dup_items as (
    select
        c.instrument_id,
        c._source_file,
        c._source_row,
        c.item,
        c.record_type,
        c.value_key,
        count(*) over w as n_copies,
        count(distinct c.value_key) over w as n_values,
        row_number() over (partition by c.instrument_id, c.usubjid, c.visit, c.study_day, c.record_type, c.item
                           order by c._source_file, c._source_row) as copy_no,
        string_agg(c._source_file || ' row ' || c._source_row || ' = ' || c.value_key, ', ') over w as copies
    from candidates as c
    window w as (partition by c.instrument_id, c.usubjid, c.visit, c.study_day, c.record_type, c.item)
),

dup_rows as (
    select
        instrument_id,
        _source_file,
        _source_row,
        bool_or(n_values > 1) as has_conflict,
        bool_and(n_copies > 1 and n_values = 1 and copy_no > 1) as is_later_copy,
        string_agg(
            coalesce('item ' || item, 'total') || ' differs (' || copies || ')', '; ' order by item nulls last
        ) filter (where n_values > 1) as conflicts,
        min(copies) filter (where copy_no > 1) as copy_of
    from dup_items
    group by instrument_id, _source_file, _source_row
),

final as (
    select
        b.study_id,
        b.instrument_id,
        b.instrument,
        b.source,
        b._source_file,
        b._source_row,
        b.usubjid,
        b.visit_raw,
        b.visit,
        b.study_day,
        case
            when b.basic_reason <> '' then b.basic_reason
            when d.has_conflict then
                'conflicting duplicates: same subject, visit and day received with different values ('
                || d.conflicts || '); every copy is quarantined'
            when d.is_later_copy then
                'exact duplicate (' || d.copy_of || '); the first copy is kept'
        end as reason,
        b.n_filled
    from basic as b
    left join dup_rows as d
        on d.instrument_id = b.instrument_id and d._source_file = b._source_file and d._source_row = b._source_row
)

select
    * exclude (n_filled),
    case
        when reason is not null then 'quarantined'
        when n_filled = 0 then 'skipped'
        else 'accepted'
    end as status
from final
