-- analysis.adex: ADaM-style exposure dataset - one record per infusion received.
-- Grain: one row per accepted staging.ex_rows record (subject x infusion).
-- Inputs: staging.ex_rows, staging.subjects.
-- Rules, in words:
--   X1 Only accepted exposure records of subjects in staging.subjects count.
--   X2 ASEQ numbers a subject's infusions in order of start day (then file, row): infusion 1 is the
--      first dose. ASTDY / AENDY are the infusion's start and end study days (day 0 = first infusion
--      day of the study's schedule; an end day not given is the start day).
--   X3 TRTA is the randomized arm (the data carry no separate actual arm; a subject is analysed as
--      treated in the arm randomized). EXTRT/EXDOSE/EXDOSU/EXROUTE are as received.
--   X4 ADURN is the infusion duration in minutes from EXDUR (ISO 8601), NULL when not given.
--   X5 TRTSDY / TRTEDY are the subject's first and last infusion start days, NINF the number of
--      infusions and CUMDOSE the sum of the doses received (in EXDOSU), on every record.
with

ex as (
    select * from staging.ex_rows where status = 'accepted'
),

subjects as (
    select * from staging.subjects
),

numbered as (
    select
        e.*,
        cast(row_number() over (partition by e.usubjid order by e.exstdy, e._source_file, e._source_row) as integer)
            as aseq
    from ex as e
    inner join subjects as s on s.usubjid = e.usubjid
),

final as (
    select
        n.study_id,
        n.usubjid,
        s.arm as trta,
        s.armn as trtan,
        s.arm_role,
        n.aseq,
        'INFUSION ' || n.aseq as avisit,
        n.aseq as avisitn,
        n.extrt,
        n.exdose,
        n.exdosu,
        n.exroute,
        n.exstdy as astdy,
        n.exendy as aendy,
        n.exdur_min as adurn,
        case when n.exdur_min is not null then 'MINUTES' end as aduru,
        min(n.exstdy) over (partition by n.usubjid) as trtsdy,
        max(n.exstdy) over (partition by n.usubjid) as trtedy,
        cast(count(*) over (partition by n.usubjid) as integer) as ninf,
        sum(n.exdose) over (partition by n.usubjid) as cumdose,
        n.source,
        n._source_file,
        n._source_row
    from numbered as n
    inner join subjects as s on s.usubjid = n.usubjid
)

select * from final
order by usubjid, aseq
