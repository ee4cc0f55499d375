-- staging.assessment_items: every rating received, checked but not yet filtered.
-- Grain: one row per raw assessment row x item (wide rows unpivoted over the item columns the
--   source provides; long rows as received), plus the rows carrying a reported total.
-- Rules applied here, in words:
--   * A value is missing when the cell is empty, equals one of the source's missing-value codes
--     (manifest missing_codes plus the NDA structure's own, compared trimmed and case-insensitive),
--     or the record's status is NOT DONE.
--   * A value that is not missing must be a whole number within the item's range (the item's own
--     min/max when the definition gives one, as HAM-D-17's 0-2 items, else the instrument's);
--     otherwise value_problem says why, repeating the value only if it is a short number or code and
--     else giving its shape, such as [10-digit number] (pipelines/core/masking.py). A reported total
--     must be a number, not negative.
--   * Long layouts: the item code is looked up in the source's item codes; a code that is neither
--     an item nor the total is 'unmapped' (SDTM derived records not used are 'derived').
-- materialized: view (one row per rating - 2.5 M for a 10,000-subject study - is cheaper to
--   recompute than to write; the decisions are kept in staging.assessment_rows and qc.quarantine).
-- Row-level facts (subject, visit, day) live in staging.assessment_rows.
-- Inputs: raw.<instrument> for each instrument, ref.source_items, ref.item_codes,
--   ref.missing_codes, ref.source_missing_codes, ref.instruments, ref.instrument_items.
with
{% for inst in instruments %}
wide_{{ inst }} as (
    select
        '{{ inst }}' as instrument_id, source, _source_file, _source_row, status,
        'item' as record_type,
        cast(substr(item_col, 6) as integer) as item,
        value_raw
    from (select source, _source_file, _source_row, status, columns('^item_[0-9]+$') from raw.{{ inst }} where item is null)
        unpivot include nulls (value_raw for item_col in (columns('^item_[0-9]+$')))
),
totals_{{ inst }} as (
    select
        '{{ inst }}' as instrument_id, source, _source_file, _source_row, status,
        'total' as record_type, cast(null as integer) as item, total as value_raw, cast(null as varchar) as item_code_raw
    from raw.{{ inst }}
    where item is null and total is not null
),
long_{{ inst }} as (
    select
        '{{ inst }}' as instrument_id, r.source, r._source_file, r._source_row, r.status,
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
        on c.source = r.source and c.instrument_id = '{{ inst }}' and c.code = lower(trim(r.item))
    where r.item is not null
),
{% endfor %}

received as (
    {% for inst in instruments %}
    {{ 'union all' if not loop.first }}
    select w.*, si.column_name as item_code_raw
    from wide_{{ inst }} as w
    inner join ref.source_items as si
        on si.source = w.source and si.instrument_id = w.instrument_id and si.item = w.item
    union all
    select * from totals_{{ inst }}
    union all
    select * from long_{{ inst }}
    {% endfor %}
),

missing_codes as (
    select source, code from ref.missing_codes
    union
    select source, code from ref.source_missing_codes
),

parsed as (
    select
        r.*,
        coalesce(ii.item_min, i.item_min) as item_min,
        coalesce(ii.item_max, i.item_max) as item_max,
        try_cast(trim(r.value_raw) as double) as number,
        r.value_raw is null or trim(r.value_raw) = '' or upper(coalesce(r.status, '')) = 'NOT DONE' as is_blank
    from received as r
    inner join ref.instruments as i on i.instrument_id = r.instrument_id
    left join ref.instrument_items as ii on ii.instrument_id = r.instrument_id and ii.item = r.item
),

-- Only values that are not plainly valid need the missing-code lookup (most values skip it): their
-- lookup key is NULL, which matches no code. A left join on the (small, distinct) code list, not a
-- correlated EXISTS: DuckDB runs that as a join over every distinct (value, source) of all 2 M
-- ratings, and this view is read three times a build.
checked as (
    select
        p.*,
        not (p.number is not null and p.number = round(p.number) and p.number between p.item_min and p.item_max)
            as not_plain
    from parsed as p
),

classified as (
    select
        c.* exclude (not_plain),
        c.is_blank or (c.not_plain and m.code is not null) as is_missing
    from checked as c
    left join missing_codes as m
        on m.source = c.source
        and m.code = case when c.not_plain is distinct from false then lower(trim(c.value_raw)) end
),

final as (
    select
        (select any_value(study_id) from ref.study) as study_id,
        instrument_id,
        source,
        _source_file,
        _source_row,
        record_type,
        item,
        item_code_raw,
        value_raw,
        is_missing,
        case when is_missing then null else number end as value,
        case
            when record_type not in ('item', 'total') or is_missing then null
            when number is null then 'value ' || tp_quote(value_raw) || ' is not a number'
            when record_type = 'item' and number <> round(number) then 'value ' || tp_show(value_raw) || ' is not a whole number'
            when record_type = 'item' and (number < item_min or number > item_max) then
                'value ' || tp_show(value_raw) || ' is outside ' || item_min || '-' || item_max
            when record_type = 'total' and number < 0 then 'reported total ' || tp_show(value_raw) || ' is negative'
        end as value_problem
    from classified
)

select * from final
