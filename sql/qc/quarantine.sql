-- qc.quarantine: every input row that was rejected, with a reason a person can act on.
-- Grain: one row per rejected raw row (an assessment row of one instrument, a randomization row, or
--   a safety/exposure row: AE, VS, EX, DS).
-- Rules, in words: a row is here when staging.assessment_rows, staging.randomization_rows or
--   staging.<ae|vs|ex|ds>_rows quarantined it; raw_values holds the row's mapped cells (JSON) as received when they are short
--   numbers or codes, and by shape otherwise ([10-digit number], [text, 23 characters]; see
--   pipelines/core/masking.py), so no identifier or free text travels on - the row number points
--   at the cell in the source. run_id is the pipeline run that rejected it.
--   A subject-level column declared on a longitudinal file whose rows disagree for a subject puts
--   every row that gave a value here (raw_table raw.subject_columns; its ratings stay accepted).
-- Inputs: staging.assessment_rows, staging.randomization_rows, staging.subject_columns, staging.ae_rows,
--   staging.vs_rows, staging.ex_rows, staging.ds_rows, raw.*.
with

-- raw_values is built after the join, for the rejected rows only (built for every raw row and then
-- joined, it was most of this model's time: 0.3 s at 10,000 subjects for no rejected row).
-- tp_show runs in a lambda over the row's cells: written out per cell, its expansion for every
-- column of every instrument made planning this query 0.15 s.
assessments as (
    {% for inst in instruments %}
    {{ 'union all' if not loop.first }}
    select
        study_id, source, _source_file, _source_row, 'raw.{{ inst }}' as raw_table, usubjid, reason,
        json_object('source', source, '_source_file', _source_file, '_source_row', _source_row
            {%- for c in raw_columns[inst] %}, '{{ c }}', shown[{{ loop.index }}]{% endfor %}) as raw_values
    from (
        select
            a.study_id, a.source, a._source_file, a._source_row, a.usubjid, a.reason,
            list_transform([{% for c in raw_columns[inst] %}{{ ', ' if not loop.first }}r.{{ c }}{% endfor %}], v -> tp_show(v)) as shown
        from staging.assessment_rows as a
        inner join raw.{{ inst }} as r
            on r._source_file = a._source_file and r._source_row = a._source_row and r.source = a.source
        where a.status = 'quarantined' and a.instrument_id = '{{ inst }}'
    )
    {% endfor %}
),

randomization as (
    select
        a.study_id, a.source, a._source_file, a._source_row, 'raw.randomization' as raw_table,
        a.usubjid, a.reason,
        json_object('source', r.source, '_source_file', r._source_file, '_source_row', r._source_row
            {%- for c in raw_columns['randomization'] %}, '{{ c }}', tp_show(r.{{ c }}){% endfor %}) as raw_values
    from staging.randomization_rows as a
    inner join raw.randomization as r
        on r._source_file = a._source_file and r._source_row = a._source_row and r.source = a.source
    where a.status = 'quarantined'
),

{% for domain in ('ae', 'vs', 'ex', 'ds') %}
safety_{{ domain }} as (
    select
        a.study_id, a.source, a._source_file, a._source_row, 'raw.{{ domain }}' as raw_table,
        a.usubjid, a.reason,
        json_object('source', r.source, '_source_file', r._source_file, '_source_row', r._source_row
            {%- for c in raw_columns[domain] %}, '{{ c }}', tp_show(r.{{ c }}){% endfor %}) as raw_values
    from staging.{{ domain }}_rows as a
    inner join raw.{{ domain }} as r on r._source_file = a._source_file and r._source_row = a._source_row
    where a.status = 'quarantined'
),
{% endfor %}

-- a subject-level column whose rows disagree: each row that gave a value (staging.subject_columns S3)
subject_level as (
    select
        r.study_id, r.source, r._source_file, r._source_row, 'raw.subject_columns' as raw_table,
        c.usubjid, c.conflict as reason,
        json_object('source', r.source, '_source_file', r._source_file, '_source_row', r._source_row,
            'subject', tp_show(r.subject), 'column_name', c.column_name) as raw_values
    from staging.subject_columns as c
    inner join raw.subject_columns as r on nullif(trim(r.subject), '') = c.usubjid
    where c.conflict is not null
        and nullif(trim(case c.column_name
            when 'site' then r.site when 'sex' then r.sex when 'age' then r.age when 'age_band' then r.age_band
            when 'race' then r.race when 'ethnicity' then r.ethnicity else r.covariates end), '') is not null
),

final as (
    select
        study_id,
        getvariable('run_id') as run_id,
        source,
        _source_file,
        _source_row,
        raw_table,
        usubjid,
        reason,
        cast(raw_values as varchar) as raw_values
    from (
        select * from assessments
        union all select * from randomization
        union all select * from subject_level
        union all select * from safety_ae
        union all select * from safety_vs
        union all select * from safety_ex
        union all select * from safety_ds
    )
)

select * from final
order by _source_file, _source_row, raw_table
