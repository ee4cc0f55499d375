-- staging.ae_rows: the decision on every raw adverse-event row, with its values typed.
-- Grain: one row per raw.ae row (source file x source row).
-- Rules, in words:
--   R1 the subject id must be present;
--   R2 when the study has a randomization list, the subject must be on it;
--   R3 the MedDRA preferred term (AEDECOD) must be present - trialpipe does not code verbatim terms;
--   R4 the MedDRA system organ class (AEBODSYS) must be present;
--   R5 severity, when given, must be MILD, MODERATE or SEVERE (or 1, 2, 3), case-insensitive;
--   R6 causality, when given, must be a known term: NOT RELATED / UNRELATED / UNLIKELY RELATED / NONE
--      / NO / N count as not related; POSSIBLY / PROBABLY / DEFINITELY RELATED, RELATED, POSSIBLE,
--      PROBABLE, DEFINITE, YES / Y as related;
--   R7 seriousness, when given, must be Y or N (YES/NO, 1/0);
--   R8 onset and end study days, when given, must be whole numbers, and the end not before the onset;
--      a missing onset day is allowed (ADAE then counts the event as treatment-emergent, the
--      conservative choice);
--   R9 the same subject, preferred term, onset day, severity and causality received twice is an exact
--      duplicate: the first copy (by file, row) is kept, later copies are quarantined.
-- status: 'accepted' or 'quarantined'; reason says why in words a person can act on.
-- Inputs: raw.ae, staging.randomization_rows, staging.subjects.
with

raw_ae as (
    select * from raw.ae
),

typed as (
    select
        {{ row_keys('r') }},
        try_cast(nullif(trim(r.aeseq), '') as double) as aeseq,
        nullif(trim(r.aeterm), '') as aeterm,
        nullif(trim(r.aedecod), '') as aedecod,
        nullif(trim(r.aebodsys), '') as aebodsys,
        nullif(trim(r.aesev), '') as aesev_raw,
        case upper(trim(r.aesev))
            when 'MILD' then 'MILD' when '1' then 'MILD'
            when 'MODERATE' then 'MODERATE' when '2' then 'MODERATE'
            when 'SEVERE' then 'SEVERE' when '3' then 'SEVERE'
        end as aesev,
        nullif(trim(r.aerel), '') as aerel_raw,
        case
            when upper(trim(r.aerel)) in ('NOT RELATED', 'UNRELATED', 'UNLIKELY RELATED', 'UNLIKELY', 'NONE', 'NO', 'N')
                then 'NOT RELATED'
            when upper(trim(r.aerel)) in (
                'POSSIBLY RELATED', 'PROBABLY RELATED', 'DEFINITELY RELATED', 'RELATED', 'POSSIBLE', 'PROBABLE',
                'DEFINITE', 'YES', 'Y'
            ) then 'RELATED'
        end as relgr1,
        nullif(trim(r.aeser), '') as aeser_raw,
        case
            when upper(trim(r.aeser)) in ('Y', 'YES', '1') then 'Y'
            when upper(trim(r.aeser)) in ('N', 'NO', '0') then 'N'
        end as aeser,
        {{ raw_and_number('r', 'aestdy') }},
        {{ raw_and_number('r', 'aeendy') }},
        nullif(trim(r.aeout), '') as aeout
    from raw_ae as r
),

checked as (
    {% call basic_reason('typed', 't') %}
            case when t.aedecod is null then
                'adverse event has no MedDRA preferred term (AEDECOD); trialpipe does not code verbatim terms'
            end,
            case when t.aebodsys is null then 'adverse event has no MedDRA system organ class (AEBODSYS)' end,
            case when t.aesev_raw is not null and t.aesev is null then
                'severity ''' || t.aesev_raw || ''' is not MILD, MODERATE or SEVERE'
            end,
            case when t.aerel_raw is not null and t.relgr1 is null then
                'causality ''' || t.aerel_raw || ''' is not a known term (e.g. NOT RELATED, POSSIBLY RELATED, RELATED)'
            end,
            case when t.aeser_raw is not null and t.aeser is null then
                'seriousness ''' || t.aeser_raw || ''' is not Y or N'
            end,
            case {{ when_not_whole('t', 'aestdy', 'onset study day') }} end,
            case {{ when_not_whole('t', 'aeendy', 'end study day') }} end,
            case when t.aeendy_num < t.aestdy_num then
                'end study day ' || t.aeendy_raw || ' is before the onset day ' || t.aestdy_raw
            end
    {% endcall %}
),

{% call first_copy_kept(
    'checked',
    keys='c.usubjid, lower(c.aedecod), c.aestdy_num, c.aesev, c.relgr1',
    same='subject, preferred term, onset day, severity and causality',
    exact=true,
) %}
        aeseq,
        aeterm,
        aedecod,
        aebodsys,
        aesev,
        aerel_raw as aerel,
        relgr1,
        aeser,
        cast(aestdy_num as integer) as aestdy,
        cast(aeendy_num as integer) as aeendy,
        aeout
{% endcall %}
