"""Study partitions: every study is a dynamic partition keyed by its study_id.

A partition is added when ``trialpipe run`` registers a study folder, or when the studies sensor
finds a new folder with a ``study.yaml`` under the studies root.
"""

from __future__ import annotations

from dagster import DynamicPartitionsDefinition

studies_partitions = DynamicPartitionsDefinition(name="studies")

# Who answers for every asset (shown in the UI; a team, or an e-mail address)
OWNERS = ["team:biostatistics"]
