"""DuckDB's memory cap for a study's working database follows the size of its input files."""

from __future__ import annotations

from pipelines.core import warehouse
from pipelines.core.study_run import StudyRun
from tests.ops.helpers import CORPUS


def _mib(setting: str) -> float:
    """DuckDB's own rendering of memory_limit ('603.5 MiB', '1.0 GiB') in MiB."""
    value, unit = setting.split()
    return float(value) * {"KiB": 1 / 1024, "MiB": 1, "GiB": 1024}[unit]


def test_budget_grows_with_the_input_between_floor_and_ceiling(monkeypatch):
    monkeypatch.delenv("TRIALPIPE_DUCKDB_MEMORY", raising=False)
    assert warehouse.memory_limit(0) == "512MB"  # a Feder-size study: the floor
    assert warehouse.memory_limit(12_000_000) == "632MB"  # 10,000 subjects, 12 MB of CSV
    assert warehouse.memory_limit(58_000_000) == "1024MB"  # 50,000 subjects: the ceiling
    assert warehouse.memory_limit(None) == "1024MB"  # unknown size
    monkeypatch.setenv("TRIALPIPE_DUCKDB_MEMORY", "3GB")
    assert warehouse.memory_limit(0) == "3GB"


def test_study_connection_is_capped_by_its_inputs(tmp_path, monkeypatch):
    monkeypatch.delenv("TRIALPIPE_DUCKDB_MEMORY", raising=False)
    study = StudyRun.from_folder(CORPUS / "utf8_bom", warehouse=tmp_path / "wh.duckdb")
    assert 0 < study.input_bytes < 100_000
    with study.connect(db=tmp_path / "work.duckdb") as con:
        got = _mib(con.execute("select current_setting('memory_limit')").fetchone()[0])
    assert abs(got - 512 * 1e6 / 2**20) < 2 + 10 * study.input_bytes / 2**20  # 512 MB = 488 MiB, plus its files
    with warehouse.connect(tmp_path / "other.duckdb", memory="2GB") as con:
        assert _mib(con.execute("select current_setting('memory_limit')").fetchone()[0]) > 1800
