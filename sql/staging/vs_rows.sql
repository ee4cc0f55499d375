-- staging.vs_rows: the decision on every raw vital-sign row.
-- Grain: one row per raw.vs row (source file x source row); its records are in staging.vs_records.
-- Rules, in words:
--   R1 the subject id must be present;
--   R2 when the study has a randomization list, the subject must be on it;
--   R3 the study day must be a whole number;
--   R4 the row needs a time point: VSELTM or VSTPT;
--   R5 every analysed value must be a number in its plausible range, and VSELTM an ISO 8601 duration
--      (staging.vs_records says why not);
--   R6 the same subject, day, time point and test received twice is a duplicate: the first copy (by
--      file, row) is kept, later copies are quarantined.
-- status: 'accepted', 'quarantined', or 'skipped' (no analysed test with a value: another test code,
--   a NOT DONE or empty measurement).
-- Inputs: raw.vs, staging.vs_records, staging.randomization_rows, staging.subjects.
with

raw_vs as (
    select * from raw.vs
),

per_row as (
    select
        v._source_file,
        v._source_row,
        bool_and(v.is_skipped) as all_skipped,
        string_agg(v.value_problem, '; ' order by v.testcd_raw, v.value_problem)
            filter (where v.value_problem is not null) as value_problems
    from staging.vs_records as v
    group by all
),

rows_ as (
    select
        {{ row_keys('r') }},
        {{ raw_and_number('r', 'vsdy') }},
        coalesce(nullif(upper(trim(r.vseltm)), ''), upper(nullif(trim(r.vstpt), ''))) as tpt_key,
        coalesce(p.all_skipped, true) as all_skipped,
        p.value_problems
    from raw_vs as r
    left join per_row as p on p._source_file = r._source_file and p._source_row = r._source_row
),

checked as (
    {% call basic_reason('rows_', 'r') %}
            case when r.vsdy_raw is null then 'vital signs have no study day (VSDY)'
                {{ when_not_whole('r', 'vsdy', 'study day') }}
            end,
            case when r.tpt_key is null then 'vital signs have no time point (VSELTM or VSTPT)' end,
            r.value_problems
    {% endcall %}
),

-- R6 on the records of rows that passed R1-R5
dup_records as (
    select
        v._source_file,
        v._source_row,
        row_number() over w as copy_no,
        first_value(v._source_file || ' row ' || v._source_row) over w as first_copy
    from staging.vs_records as v
    inner join checked as c on c._source_file = v._source_file and c._source_row = v._source_row
    where c.basic_reason = '' and not v.is_skipped
    window w as (partition by v.usubjid, c.vsdy_num, c.tpt_key, v.paramcd order by v._source_file, v._source_row)
),

dups as (
    select _source_file, _source_row, min(first_copy) as first_copy
    from dup_records
    where copy_no > 1
    group by all
),

final as (
    select
        {{ key_columns('c') }},
        case
            when c.basic_reason <> '' then c.basic_reason
            when d.first_copy is not null then
                'duplicate of ' || d.first_copy || ' (same subject, day, time point and test); the first copy is kept'
        end as reason,
        c.all_skipped
    from checked as c
    left join dups as d on d._source_file = c._source_file and d._source_row = c._source_row
)

select
    * exclude (all_skipped),
    case
        when reason is not null then 'quarantined'
        when all_skipped then 'skipped'
        else 'accepted'
    end as status
from final
order by _source_file, _source_row
