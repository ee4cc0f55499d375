"""CSR package layer: the numbered tables and figures (RTF + HTML) and the ADaM submission datasets
(SAS XPORT v5 + Define-XML 2.1) of one study, written beside its HTML report."""


import dagster as dg

from pipelines.orchestration.checks import check_spec
from pipelines.orchestration.partitions import study_asset_spec, study_assets
from pipelines.orchestration.resources import TrialpipeResource

TLF_KEY = dg.AssetKey(["report", "tlf_package"])
SUBMISSION_KEY = dg.AssetKey(["report", "submission_datasets"])
OUTPUTS = {  # asset -> (description, kinds)
    TLF_KEY: (
        "Numbered CSR tables and figures (14.1 disposition, demographics; 14.2 efficacy; 14.3 safety) as RTF and HTML with an index",
        {"rtf", "html"},
    ),
    SUBMISSION_KEY: (
        "ADaM datasets (ADSL, ADQS, ADAE, ADVS, ADEX, ADTTE when present) as SAS XPORT v5 with Define-XML 2.1",
        {"sas", "xml"},
    ),
}
# The ADaM and results tables the package reads, when the graph has them (safety and estimand
# assets are optional: their outputs say "no data" without them).
WANTED = [
    ["analysis", t] for t in ("adsl", "adqs", "adae", "advs", "adex", "adtte")
] + [["results", t] for t in ("model_fits", "lsmeans", "treatment_effects", "responders", "sensitivity", "durability")] + [
    ["report", "study_report"]
]


def tlf_assets(available: list[dg.AssetKey]):
    """The multi-asset, depending on the WANTED keys that ``available`` holds."""
    deps = [dg.AssetKey(k) for k in WANTED if dg.AssetKey(k) in set(available)]

    @study_assets(
        name="csr_package",
        specs=[study_asset_spec(key, group="report", description=d, deps=deps, kinds=kinds) for key, (d, kinds) in OUTPUTS.items()],
        check_specs=[check_spec("xpt_v5_conformant")],
    )
    def csr_package(context: dg.AssetExecutionContext, trialpipe: TrialpipeResource):
        from pipelines.core.provenance import code_version
        from pipelines.report import figures as F
        from pipelines.report.metadata import md_table, md_with_image
        from pipelines.tlf.package import build_package

        study, run_id = trialpipe.for_run(context)
        out_dir = study.report_dir / f"{study.study_id}-tlf"
        with study.connect(run_id) as con:
            pkg = build_package(con, study.study_id, out_dir, run_id=run_id, progress=context.log.info, code_version=code_version())
        table = md_table(
            ["Output", "Title", "Status"],
            [[o.shell.label, o.shell.title, "written" if o.status == "written" else f"no data: {o.reason}"] for o in pkg.outputs],
            ["l", "l", "l"],
        )
        fig = next((o.figure for o in pkg.written if o.figure is not None and o.shell.builder == "forest_figure"), None) or next(
            (o.figure for o in pkg.written if o.figure is not None), None
        )
        yield dg.MaterializeResult(
            asset_key=TLF_KEY,
            metadata={
                "index": dg.MetadataValue.url(pkg.index.resolve().as_uri()),
                "path": dg.MetadataValue.path(str(out_dir)),
                "outputs_written": len(pkg.written),
                "outputs_without_data": len(pkg.absent),
                "outputs": dg.MetadataValue.md(md_with_image(table, F.svg_data_uri(fig, px_per_inch=72) if fig is not None else None, "figure")),
            },
        )
        ds_table = md_table(
            ["Dataset", "Label", "Records", "Variables", "File"],
            [[d.name, d.label, str(d.frame.height), str(len(d.variables)), d.file_name] for d in pkg.datasets],
            ["l", "l", "r", "r", "l"],
        )
        yield dg.MaterializeResult(
            asset_key=SUBMISSION_KEY,
            metadata={
                "define_xml": dg.MetadataValue.path(str(pkg.define)) if pkg.define else dg.MetadataValue.text("none"),
                "datasets": dg.MetadataValue.md(ds_table),
                "records": sum(d.frame.height for d in pkg.datasets),
            },
        )
        yield dg.AssetCheckResult(
            asset_key=SUBMISSION_KEY,
            check_name="xpt_v5_conformant",
            passed=not pkg.problems,
            severity=dg.AssetCheckSeverity.WARN,
            description="; ".join(pkg.problems) or f"{len(pkg.datasets)} datasets written",
        )

    return csr_package
