-- staging.assessment_items: every rating received, checked but not yet filtered.
-- Grain: one row per raw assessment row x item (wide rows unpivoted over the item columns the
--   source provides; long rows as received), plus the rows carrying a reported total.
-- Rules applied here, in words:
--   * The visit label is matched, trimmed and case-insensitively, against the manifest's visit
--     codes for that source (visit id, label, codes, recode.visit); failing that, the visit number.
--   * The study day is the recorded day when it is a whole number, else the visit's nominal day.
--   * A value is missing when the cell is empty, equals one of the source's missing-value codes
--     (manifest missing_codes plus the NDA structure's own), or the record's status is NOT DONE.
--   * A value that is not missing must be a whole number within the instrument's item range;
--     otherwise value_problem says why, in words a person can act on.
-- Inputs: raw.<instrument> for each instrument, ref.visit_codes, ref.visits, ref.source_items,
--   ref.item_codes, ref.missing_codes, ref.source_missing_codes, ref.instruments, ref.item_anchors.
with
{% for inst in instruments %}
wide_{{ inst }} as (
    select
        '{{ inst }}' as instrument_id, study_id, source, subject, visit, visitnum, study_day, arm, status,
        _source_file, _source_row, _source_sha256,
        'item' as record_type,
        cast(regexp_extract(item_col, '([0-9]+)$', 1) as integer) as item,
        value_raw
    from (select * exclude (item, value, total, derived) from raw.{{ inst }} where item is null)
        unpivot include nulls (value_raw for item_col in (columns('^item_[0-9]+$')))
),
wide_total_{{ inst }} as (
    select
        '{{ inst }}' as instrument_id, study_id, source, subject, visit, visitnum, study_day, arm, status,
        _source_file, _source_row, _source_sha256,
        'total' as record_type, cast(null as integer) as item, total as value_raw
    from raw.{{ inst }}
    where item is null and total is not null
),
long_{{ inst }} as (
    select
        '{{ inst }}' as instrument_id, r.study_id, r.source, r.subject, r.visit, r.visitnum, r.study_day, r.arm,
        r.status, r._source_file, r._source_row, r._source_sha256,
        case
            when c.code is null and upper(coalesce(r.derived, '')) = 'Y' then 'derived'
            when c.code is null then 'unmapped'
            when c.item is null then 'total'
            else 'item'
        end as record_type,
        c.item,
        r.value as value_raw,
        r.item as item_code_raw
    from raw.{{ inst }} as r
    left join ref.item_codes as c
        on c.source = r.source and c.instrument_id = '{{ inst }}'
        and c.code = lower(trim(r.item))
    where r.item is not null
),
{% endfor %}
received as (
    {% for inst in instruments %}
    {{ 'union all by name' if not loop.first }}
    select w.*, si.column_name as item_code_raw
    from wide_{{ inst }} as w
    inner join ref.source_items as si
        on si.source = w.source and si.instrument_id = w.instrument_id and si.item = w.item
    union all by name
    select *, cast(null as varchar) as item_code_raw from wide_total_{{ inst }}
    union all by name
    select * from long_{{ inst }}
    {% endfor %}
),

anchors as (
    select instrument_id, string_agg(value || ' = ' || anchor, ', ' order by value) as anchor_text
    from ref.item_anchors
    group by instrument_id
),

missing_codes as (
    select source, code from ref.missing_codes
    union
    select source, code from ref.source_missing_codes
),

mapped as (
    select
        r.*,
        trim(r.subject) as usubjid,
        coalesce(vc.visit, vn.visit) as visit_id,
        i.instrument,
        i.item_min,
        i.item_max,
        an.anchor_text,
        nullif(trim(r.value_raw), '') as value_text,
        (
            r.value_raw is null
            or trim(r.value_raw) = ''
            or mc.code is not null
            or upper(coalesce(r.status, '')) = 'NOT DONE'
        ) as is_missing,
        mc.code is not null as is_missing_code
    from received as r
    left join ref.instruments as i on i.instrument_id = r.instrument_id
    left join anchors as an on an.instrument_id = r.instrument_id
    left join ref.visit_codes as vc on vc.source = r.source and vc.code = lower(trim(r.visit))
    left join ref.visit_codes as vn on vn.source = r.source and vn.code = lower(trim(r.visitnum))
    left join missing_codes as mc on mc.source = r.source and mc.code = lower(trim(r.value_raw))
),

checked as (
    select
        m.*,
        v.avisitn,
        v.nominal_day,
        try_cast(trim(m.study_day) as double) as day_number,
        case when m.is_missing then null else try_cast(m.value_text as double) end as value_number
    from mapped as m
    left join ref.visits as v on v.visit = m.visit_id
),

final as (
    select
        c.study_id,
        c.instrument_id,
        c.instrument,
        c.source,
        c._source_file,
        c._source_row,
        c._source_sha256,
        c.usubjid,
        c.visit as visit_raw,
        c.visit_id as visit,
        c.avisitn,
        case
            when c.day_number is not null and c.day_number = round(c.day_number) then cast(c.day_number as integer)
            else c.nominal_day
        end as study_day,
        c.day_number is not null and c.day_number = round(c.day_number) as day_recorded,
        nullif(trim(c.arm), '') as arm_raw,
        c.record_type,
        c.item,
        c.item_code_raw,
        c.value_raw,
        c.is_missing,
        case when c.is_missing then null else c.value_number end as value,
        case
            when c.record_type not in ('item', 'total') or c.is_missing then null
            when c.value_number is null then
                'value ''' || c.value_text || ''' is not a number'
                || coalesce(' (' || c.instrument || ' items are numbers: ' || c.anchor_text || ')', '')
            when c.record_type = 'item' and c.value_number <> round(c.value_number) then
                'value ' || c.value_text || ' is not a whole number'
            when c.record_type = 'item' and (c.value_number < c.item_min or c.value_number > c.item_max) then
                'value ' || c.value_text || ' is outside ' || c.item_min || '-' || c.item_max
            when c.record_type = 'total' and c.value_number < 0 then
                'reported total ' || c.value_text || ' is negative'
        end as value_problem
    from checked as c
)

select * from final
