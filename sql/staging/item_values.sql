-- staging.item_values: every accepted item rating, narrow: the assessment row's number, the item,
--   the value. The ratings of one assessment row share its subject, visit, day and lineage, which
--   staging.assessment_rows holds once; staging.item_responses joins them back.
-- Grain: one row per accepted assessment row x item (staging.assessment_items records of type
--   'item' of rows whose status in staging.assessment_rows is 'accepted').
-- Rules, in words: only items of accepted rows are kept; value is the numeric rating after
--   missing-value codes are applied (NULL when missing); item is the position in the instrument's
--   standard order.
-- Why narrow: writing the subject, instrument, visit and file strings again for every item was
--   most of the staging write (2 M ratings: 5.65 s for 14 columns, 0.50 s for these 4).
-- published: no (staging.item_responses is published in full instead)
-- Inputs: staging.assessment_items, staging.assessment_rows.
select
    r.row_id,
    i.item,
    i.value,
    i.is_missing
from staging.assessment_items as i
inner join staging.assessment_rows as r
    on r.instrument_id = i.instrument_id and r._source_file = i._source_file and r._source_row = i._source_row
where r.status = 'accepted' and i.record_type = 'item'
