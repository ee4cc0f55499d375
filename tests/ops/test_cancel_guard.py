"""A canceling run starts no further step (pipelines.orchestration.resources.stop_if_canceling)."""

import dagster as dg

from pipelines.orchestration.resources import stop_if_canceling


def test_a_step_of_a_canceling_run_does_not_start():
    started: list[str] = []

    @dg.asset
    def first(context: dg.AssetExecutionContext) -> int:
        stop_if_canceling(context)
        started.append("first")
        # what trialpipe's signal handler does on Ctrl-C / SIGTERM, before the interrupt lands (here it
        # never does: the interrupt was swallowed, as a DuckDB query turns it into an ordinary error)
        context.instance.report_run_canceling(context.run, message="SIGTERM received by trialpipe")
        return 1

    @dg.asset
    def second(context: dg.AssetExecutionContext, first: int) -> int:
        stop_if_canceling(context)
        started.append("second")  # would open the study's DuckDB file
        return first + 1

    instance = dg.DagsterInstance.ephemeral()
    try:
        dg.materialize([first, second], instance=instance, raise_on_error=False)
    except KeyboardInterrupt:  # how far the interrupt travels is Dagster's business
        pass
    assert started == ["first"]
    run = instance.get_runs(limit=1)[0]
    failures = [e.dagster_event for e in instance.all_logs(run.run_id) if e.dagster_event and e.dagster_event.is_step_failure]
    assert [f.step_key for f in failures] == ["second"]
    error = failures[0].step_failure_data.error
    assert "is canceling: this step does not start" in error.to_string(), error.to_string()
    assert failures[0].step_failure_data.error_source.name == "INTERRUPT"


def test_a_running_run_goes_on():
    @dg.asset
    def only(context: dg.AssetExecutionContext) -> int:
        stop_if_canceling(context)
        return 1

    assert dg.materialize([only], instance=dg.DagsterInstance.ephemeral()).success
