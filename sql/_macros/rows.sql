{#-
  The pieces every "decision on every raw row" staging model shares (sql/staging/{ae,ds,ex,vs}_rows.sql,
  vs_records.sql), and row lineage in aggregates. The SQL runner (pipelines/core/sql.py) makes every macro under sql/_macros/ callable
  from every model, as dbt does. Each macro is one rule or one step said once; the model's header still
  states its rules in words.
-#}

{#- The row's place in its file and its subject, as every staging row carries them. -#}
{% macro row_keys(r) -%}
        {{ r }}.study_id,
        {{ r }}.source,
        {{ r }}._source_file,
        {{ r }}._source_row,
        nullif(trim({{ r }}.subject), '') as usubjid
{%- endmacro %}

{#- The same keys, once derived, at the head of a later step's column list (`t` optional). -#}
{% macro key_columns(t=none) -%}
{%- set p = t ~ "." if t else "" -%}
        {{ p }}study_id,
        {{ p }}source,
        {{ p }}_source_file,
        {{ p }}_source_row,
        {{ p }}usubjid
{%- endmacro %}

{#- A raw text field as received (<col>_raw) and read as a number (<col>_num). -#}
{% macro raw_and_number(r, col) -%}
        nullif(trim({{ r }}.{{ col }}), '') as {{ col }}_raw,
        try_cast(nullif(trim({{ r }}.{{ col }}), '') as double) as {{ col }}_num
{%- endmacro %}

{#- "The subject id must be present; when the study has a randomization list, the subject must be on
    it": two reasons for concat_ws, each NULL when the rule holds. -#}
{% macro subject_problems(t) -%}
            case when {{ t }}.usubjid is null then 'subject id is empty' end,
            case when (select count(*) > 0 from staging.randomization_rows) and {{ t }}.usubjid is not null
                and {{ t }}.usubjid not in (select usubjid from staging.subjects) then
                'subject ' || {{ t }}.usubjid || ' is not in the randomization list'
            end
{%- endmacro %}

{#- The row's basic reason: R1/R2 (subject_problems) and the model's own rules, given as the call
    block (reasons separated by commas, each NULL when its rule holds); '' when every rule holds.
        checked as (
            {% call basic_reason('typed', 't') %} case when t.x is null then 'no x' end {% endcall %}
        ) -#}
{% macro basic_reason(relation, t) -%}
select
        {{ t }}.*,
        concat_ws(
            '; ',
            {{ subject_problems(t) }},
            {{ caller() | trim }}
        ) as basic_reason
    from {{ relation }} as {{ t }}
{%- endmacro %}

{#- One `when ... then ...` branch: <col>_raw given but <col>_num not a whole number. -#}
{% macro when_not_whole(t, col, label) -%}
when {{ t }}.{{ col }}_raw is not null and ({{ t }}.{{ col }}_num is null or {{ t }}.{{ col }}_num <> round({{ t }}.{{ col }}_num)) then
                '{{ label }} ''' || {{ t }}.{{ col }}_raw || ''' is not a whole number'
{%- endmacro %}

{#- Minutes of an ISO 8601 duration (PT40M, PT1H, PT1H30M; with signed, also -PT15M); NULL when the
    text is not one. -#}
{% macro iso_minutes(x, signed=false) -%}
case when regexp_full_match({{ x }}, '{{ "-?" if signed }}PT(\d+H)?(\d+M)?') and {{ x }} not in ('PT'{{ ", '-PT'" if signed }}) then
            {% if signed %}(case when {{ x }} like '-%' then -1 else 1 end) * {% endif -%}
            (
                coalesce(try_cast(regexp_extract({{ x }}, '(\d+)H', 1) as integer), 0) * 60
                + coalesce(try_cast(regexp_extract({{ x }}, '(\d+)M', 1) as integer), 0)
            )
        end
{%- endmacro %}

{#- Each row of `relation` numbered among its copies (same `keys`, ordered by file, row) with the
    first copy's place: copy_no > 1 is a later copy. Rows that already failed a rule are ranked apart
    from those that passed. -#}
{% macro copies(relation, keys) -%}
    select
        c.*,
        row_number() over w as copy_no,
        first_value(c._source_file || ' row ' || c._source_row) over w as first_copy
    from {{ relation }} as c
    window w as (
        partition by c.basic_reason = '', {{ keys }}
        order by c._source_file, c._source_row
    )
{%- endmacro %}

{#- The reason of a ranked row (see copies): its basic reason, else, for a later copy, which copy it
    repeats and what makes it the same. -#}
{% macro reason(same, exact=false) -%}
case
            when basic_reason <> '' then basic_reason
            when copy_no > 1 then
                '{{ "exact " if exact }}duplicate of ' || first_copy || ' (same {{ same }}); the first copy is kept'
        end
{%- endmacro %}

{#- The closing select: a row without a reason is accepted. -#}
{% macro decided(relation) -%}
select
    *,
    case when reason is null then 'accepted' else 'quarantined' end as status
from {{ relation }}
order by _source_file, _source_row
{%- endmacro %}

{#- The closing steps of a staging model that decides on every raw row: R "the same record received
    twice" and the decision. Rows of `relation` are ranked among their copies (same `keys`, see
    copies), the model's columns (the call block, a comma list) follow the row keys, the reason is the
    row's basic reason or, for a later copy, which copy it repeats (same `same`; `exact` when every
    value agrees), and a row without a reason is accepted (decided).
        checked as ( ... ),

        {% call first_copy_kept('checked', 'c.usubjid, c.dscat', 'subject and category') %}
            dscat,
            cast(dsstdy_num as integer) as dsstdy
        {% endcall %} -#}
{% macro first_copy_kept(relation, keys, same, exact=false) -%}
ranked as (
    {{ copies(relation, keys) }}
),

final as (
    select
        {{ key_columns() }},
        {{ caller() | trim }},
        {{ reason(same, exact) }} as reason
    from ranked
)

{{ decided('final') }}
{%- endmacro %}

{#- In an aggregate step: the lineage (source, file, row) of the group's first row by file and row,
    named as given. -#}
{% macro first_lineage(source='source', file='_source_file', row='_source_row') -%}
first(source order by _source_file, _source_row) as {{ source }},
        first(_source_file order by _source_file, _source_row) as {{ file }},
        first(_source_row order by _source_file, _source_row) as {{ row }}
{%- endmacro %}

{#- `a` and `b` are the same analysis record: visit, derivation type (DTYPE) and source row. -#}
{% macro same_record(a, b) -%}
{{ a }}.avisit = {{ b }}.avisit
    and {{ a }}.dtype is not distinct from {{ b }}.dtype
    and {{ a }}._source_file is not distinct from {{ b }}._source_file
    and {{ a }}._source_row is not distinct from {{ b }}._source_row
{%- endmacro %}
