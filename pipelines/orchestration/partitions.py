"""Study partitions: every study is a dynamic partition keyed by its study_id.

A partition is added when ``trialpipe run`` registers a study folder, or when the studies sensor
finds a new folder with a ``study.yaml`` under the studies root.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import dagster as dg

studies_partitions = dg.DynamicPartitionsDefinition(name="studies")

# Who answers for every asset (shown in the UI; a team, or an e-mail address)
OWNERS = ["team:biostatistics"]


def study_asset_spec(
    key: dg.AssetKey | Sequence[str],
    *,
    group: str,
    description: str,
    kinds: Iterable[str],
    deps: Iterable[dg.AssetKey] = (),
    **extra,
) -> dg.AssetSpec:
    """The spec of one of a study's assets: every trialpipe asset is partitioned by study and owned
    by OWNERS; ``extra`` passes on (metadata, skippable)."""
    return dg.AssetSpec(
        key,
        group_name=group,
        description=description,
        kinds=set(kinds),
        deps=list(deps),
        owners=OWNERS,
        partitions_def=studies_partitions,
        **extra,
    )


def study_assets(*, name: str, specs: Sequence[dg.AssetSpec], **options):
    """``@multi_asset`` over a study's assets (one partition per study); ``options`` pass on
    (check_specs, can_subset)."""
    return dg.multi_asset(name=name, specs=specs, partitions_def=studies_partitions, **options)
