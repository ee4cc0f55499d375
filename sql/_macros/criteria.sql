{#- Symptom and diagnostic criteria (sql/analysis/scores.sql). -#}

{#- Aggregated over a rule's criteria: 'Y' when every criterion has at least `needed` items met, 'N'
    when some criterion cannot reach `needed` even if its unanswered items were all met, else NULL
    (not decidable from the answers). `met`/`answered` count a criterion's items (NULL = none),
    `n` is its number of items. -#}
{% macro all_criteria_met(met, answered, n, needed) -%}
case
            when bool_and(coalesce({{ met }}, 0) >= {{ needed }}) then 'Y'
            when bool_or(coalesce({{ met }}, 0) + {{ n }} - coalesce({{ answered }}, 0) < {{ needed }}) then 'N'
        end
{%- endmacro %}
