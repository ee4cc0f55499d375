-- staging.randomization_rows: the decision on every raw randomization row.
-- Grain: one row per raw.randomization row (source file x source row).
-- Rules, in words:
--   R1 the subject id must be present;
--   R2 the arm code must name one of the manifest's arms (arm id, label, codes, or the source's
--      recode.arm), matched trimmed and case-insensitively;
--   R3 the same subject listed twice with the same arm is an exact duplicate: the first copy (by
--      file, row) is kept, later copies are quarantined;
--   R4 the same subject listed with different arms is a conflict: every copy is quarantined (and
--      the arm-consistency check blocks the study until it is resolved).
--   R5 a longitudinal file used as a randomization source (columns.visit mapped: one row per
--      subject x visit, e.g. a REDCap export that also feeds the assessment sources) repeats each
--      subject: later rows of the same source with the same subject and arm are 'skipped' (the
--      subject is already listed), not quarantined as duplicates; skip_reason says so.
-- status: 'accepted', 'quarantined' or 'skipped'; reason says why in words a person can act on.
-- Inputs: raw.randomization, ref.arm_codes, ref.arms.
with

rows as (
    select
        r.*,
        nullif(trim(r.subject), '') as usubjid,
        ac.arm as arm_id
    from raw.randomization as r
    left join ref.arm_codes as ac on ac.source = r.source and ac.code = lower(trim(r.arm))
),

arm_list as (
    select string_agg(arm || coalesce(' (' || arm_label || ')', ''), ', ' order by armn) as arms from ref.arms
),

ranked as (
    select
        r.*,
        count(distinct r.arm_id) over (partition by r.usubjid) as n_arms_for_subject,
        row_number() over (partition by r.usubjid, r.arm_id order by r._source_file, r._source_row) as copy_no,
        first_value(r._source_file || ' row ' || r._source_row)
            over (partition by r.usubjid, r.arm_id order by r._source_file, r._source_row) as first_copy,
        first_value(r.source)
            over (partition by r.usubjid, r.arm_id order by r._source_file, r._source_row) as first_source,
        string_agg(r.arm_id || ' in ' || r._source_file || ' row ' || r._source_row, '; '
                   order by r._source_file, r._source_row)
            over (partition by r.usubjid) as all_arms
    from rows as r
),

final as (
    select
        r.study_id,
        r.source,
        r._source_file,
        r._source_row,
        r._source_sha256,
        r.usubjid,
        r.arm as arm_raw,
        r.arm_id as arm,
        case
            when r.usubjid is null then 'subject id is empty'
            when r.arm_id is null then
                'arm ' || coalesce(tp_label(r.arm), '(empty)') || ' is not one of the study''s arms ('
                || (select arms from arm_list) || '); map it under recode.arm or arms[].codes'
            when r.n_arms_for_subject > 1 then
                'subject ' || r.usubjid || ' is randomized to more than one arm (' || r.all_arms || ')'
            when r.copy_no > 1 and not (r.visit is not null and r.source = r.first_source) then
                'exact duplicate of ' || r.first_copy || ' (same subject and arm); the first copy is kept'
        end as reason,
        case
            when r.usubjid is not null and r.arm_id is not null and r.n_arms_for_subject = 1 and r.copy_no > 1
                and r.visit is not null and r.source = r.first_source then
                'repeated row of a longitudinal file: subject ' || r.usubjid || ' already listed with the same arm at '
                || r.first_copy
        end as skip_reason
    from ranked as r
)

select
    *,
    case when reason is not null then 'quarantined' when skip_reason is not null then 'skipped' else 'accepted' end
        as status
from final
