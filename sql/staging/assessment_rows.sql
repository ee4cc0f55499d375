-- staging.assessment_rows: the decision on every raw assessment row.
-- Grain: one row per raw.<instrument> row (instrument x source file x source row).
-- row_id: a number per row (in file order: instrument, file, row), which staging.item_values
--   carries instead of the row's subject, visit, day and lineage.
-- status: 'accepted' (its ratings go on to staging.item_responses), 'quarantined' (to
--   qc.quarantine with the reason) or 'skipped' (a wide row with no cell of this instrument
--   filled in, such as a REDCap event at which the form was not administered).
-- Rules, in words:
--   * The visit label is matched, trimmed and case-insensitively, against the manifest's visit
--     codes for the source (visit id, label, codes, recode.visit); failing that, the visit number.
--   * The study day is the recorded day when it is a whole number, else the visit's nominal day.
--   * predose ('Y' pre-dose, 'N' post-dose, NULL unknown) comes from columns.time_from_dose when
--     mapped (minutes from the dose: <= 0 pre-dose, > 0 post-dose), else from columns.predose
--     (Y/yes/1/true/pre/pre-dose/predose/baseline = 'Y'; N/no/0/false/post/post-dose/postdose = 'N';
--     any other text containing 'post' = 'N', containing 'pre' = 'Y', e.g. SDTM QSTPT
--     '40 MIN POST-DOSE'). analysis.adqs never takes a post-dose rating as the baseline.
--   R1 the subject id must be present;
--   R2 the visit label must be one of the manifest's;
--   R3 when the study has a randomization list, the subject must be on it (accepted rows);
--   R4 every item value must be missing or a whole number within the item range, and a reported
--      total must be a non-negative number (staging.assessment_items says why not);
--   R5 long layouts: every item code must be one of the instrument's items or its total;
--   R6 the same subject, instrument, visit and study day received more than once (for long
--      layouts: the same item) is a duplicate: when every copy has the same values the first copy
--      (by file, row) is kept and later copies are quarantined as exact duplicates; when the values
--      differ every copy is quarantined as a conflict. Records of one visit on different recorded
--      days are repeated assessments, not duplicates.
-- Inputs: raw.<instrument>, staging.assessment_items, staging.randomization_rows,
--   staging.subjects, ref.visit_codes, ref.visits, ref.item_anchors, ref.instruments.
with

{% for inst in instruments %}
rows_{{ inst }} as (
    select
        '{{ inst }}' as instrument_id, study_id, source, _source_file, _source_row,
        subject, visit, visitnum, study_day, predose as predose_raw, time_from_dose, arm, item as item_code,
        case
            when item is not null then (coalesce(value, '') <> '')::int
            else len(list_filter([{{ item_columns[inst] | join(', ') }}, total], x -> coalesce(x, '') <> ''))
        end as n_filled
    from raw.{{ inst }}
),
{% endfor %}

raw_rows as (
    {% for inst in instruments %}
    {{ 'union all' if not loop.first }}
    select * from rows_{{ inst }}
    {% endfor %}
),

has_randomization as (
    select count(*) > 0 as yes from staging.randomization_rows
),

visit_list as (
    select string_agg(visit, ', ' order by avisitn) as visits from ref.visits
),

anchors as (
    select a.instrument_id, string_agg(a.value || ' = ' || a.anchor, ', ' order by a.value) as anchor_text
    from ref.item_anchors as a
    group by a.instrument_id
),

mapped as (
    select
        r.*,
        i.instrument,
        nullif(trim(r.subject), '') as usubjid,
        coalesce(vc.visit, vn.visit) as visit_id,
        try_cast(trim(r.study_day) as double) as day_number
    from raw_rows as r
    inner join ref.instruments as i on i.instrument_id = r.instrument_id
    left join ref.visit_codes as vc on vc.source = r.source and vc.code = lower(trim(r.visit))
    left join ref.visit_codes as vn on vn.source = r.source and vn.code = lower(trim(r.visitnum))
),

located as (
    select
        m.*,
        v.avisitn,
        case
            when m.day_number is not null and m.day_number = round(m.day_number) then cast(m.day_number as integer)
            else v.nominal_day
        end as day,
        m.day_number is not null and m.day_number = round(m.day_number) as day_recorded
    from mapped as m
    left join ref.visits as v on v.visit = m.visit_id
),

-- item-level problems, aggregated per row (only rows that have any)
item_problems as (
    select
        a.instrument_id, a._source_file, a._source_row,
        string_agg(
            i.instrument || ' ' || coalesce('item ' || a.item, 'total')
            || coalesce(' (' || a.item_code_raw || ')', '') || ': ' || a.value_problem
            || case when a.value_problem like '%is not a number' then
                   coalesce(' (' || i.instrument || ' items are numbers: ' || an.anchor_text || ')', '') else '' end,
            '; ' order by a.item nulls last
        ) filter (where a.value_problem is not null) as value_problems,
        string_agg(distinct tp_quote(a.item_code_raw), ', ' order by tp_quote(a.item_code_raw))
            filter (where a.record_type = 'unmapped') as unknown_codes
    from staging.assessment_items as a
    inner join ref.instruments as i on i.instrument_id = a.instrument_id
    left join anchors as an on an.instrument_id = a.instrument_id
    where a.value_problem is not null or a.record_type = 'unmapped'
    group by a.instrument_id, a._source_file, a._source_row
),

basic as (
    select
        l.*,
        concat_ws(
            '; ',
            case when l.usubjid is null then 'subject id is empty' end,
            case when l.visit_id is null then
                'visit ' || coalesce(tp_label(nullif(trim(l.visit), '')), '(empty)') || ' is not a visit of the manifest ('
                || (select visits from visit_list) || '); map it under recode.visit or visits[].codes'
            end,
            case when (select yes from has_randomization) and l.usubjid is not null
                and l.usubjid not in (select usubjid from staging.subjects) then
                'subject ' || l.usubjid || ' is not in the randomization list'
            end,
            p.value_problems,
            case when p.unknown_codes is not null then
                'item code(s) ' || p.unknown_codes || ' are not ' || l.instrument || ' items; map them under items.codes'
            end
        ) as basic_reason
    from located as l
    left join item_problems as p
        on p.instrument_id = l.instrument_id and p._source_file = l._source_file and p._source_row = l._source_row
),

-- R6: only rows sharing a key with another row that passed R1-R5 are compared, item by item.
keyed as (
    select
        b.*,
        count(*) over (partition by b.instrument_id, b.usubjid, b.visit_id, b.day, lower(trim(b.item_code))) as n_same_key
    from basic as b
    where b.basic_reason = '' and b.n_filled > 0
),

dup_items as (
    select
        k.instrument_id, k._source_file, k._source_row, k.usubjid, k.visit_id, k.day,
        lower(trim(k.item_code)) as item_key,
        a.record_type, a.item,
        coalesce(cast(a.value as varchar), '(missing)') as value_key
    from keyed as k
    inner join staging.assessment_items as a
        on a.instrument_id = k.instrument_id and a._source_file = k._source_file and a._source_row = k._source_row
    where k.n_same_key > 1 and a.record_type in ('item', 'total')
),

dup_compare as (
    select
        d.*,
        count(distinct d.value_key) over w as n_values,
        string_agg(d._source_file || ' row ' || d._source_row || ' = ' || d.value_key, ', '
                   order by d._source_file, d._source_row) over w as copies
    from dup_items as d
    window w as (partition by d.instrument_id, d.usubjid, d.visit_id, d.day, d.item_key, d.record_type, d.item)
),

dup_rows as (
    select
        instrument_id, _source_file, _source_row,
        bool_or(n_values > 1) as has_conflict,
        string_agg(coalesce('item ' || item, 'total') || ' differs (' || copies || ')', '; ' order by item nulls last)
            filter (where n_values > 1) as conflicts
    from dup_compare
    group by all
),

first_copy as (
    select
        k.instrument_id, k._source_file, k._source_row,
        row_number() over w as copy_no,
        first_value(k._source_file || ' row ' || k._source_row) over w as first_at
    from keyed as k
    where k.n_same_key > 1
    window w as (partition by k.instrument_id, k.usubjid, k.visit_id, k.day, lower(trim(k.item_code))
                 order by k._source_file, k._source_row)
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
        b.visit as visit_raw,
        b.visit_id as visit,
        b.avisitn,
        b.day as study_day,
        b.day_recorded,
        case
            when try_cast(trim(b.time_from_dose) as double) is not null then
                case when try_cast(trim(b.time_from_dose) as double) <= 0 then 'Y' else 'N' end
            when lower(trim(b.predose_raw)) in ('y', 'yes', '1', 'true', 'pre', 'pre-dose', 'predose', 'pre dose', 'baseline') then 'Y'
            when lower(trim(b.predose_raw)) in ('n', 'no', '0', 'false', 'post', 'post-dose', 'postdose', 'post dose') then 'N'
            when lower(b.predose_raw) like '%post%' then 'N'
            when lower(b.predose_raw) like '%pre%' then 'Y'
        end as predose,
        nullif(trim(b.arm), '') as arm_raw,
        case
            when b.basic_reason <> '' then b.basic_reason
            when d.has_conflict then
                'conflicting duplicates: same subject, visit and day received with different values ('
                || d.conflicts || '); every copy is quarantined'
            when f.copy_no > 1 then
                'exact duplicate (of ' || f.first_at || '; same subject, visit, day and values); the first copy is kept'
        end as reason,
        b.n_filled
    from basic as b
    left join dup_rows as d
        on d.instrument_id = b.instrument_id and d._source_file = b._source_file and d._source_row = b._source_row
    left join first_copy as f
        on f.instrument_id = b.instrument_id and f._source_file = b._source_file and f._source_row = b._source_row
)

select
    * exclude (n_filled),
    case
        when reason is not null then 'quarantined'
        when n_filled = 0 then 'skipped'
        else 'accepted'
    end as status,
    cast(row_number() over (order by instrument_id, _source_file, _source_row, source) as integer) as row_id
from final
