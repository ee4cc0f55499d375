"""``trialpipe tlf`` end to end on a built study folder and its warehouse; user mistakes without tracebacks."""

from __future__ import annotations

from click.testing import CliRunner

from pipelines.cli import main


def _run(args, capsys):
    try:
        main(args)
        code = 0
    except SystemExit as exc:
        code = exc.code
    out = capsys.readouterr()
    return code, out.out, out.err


def test_tlf_writes_the_package_and_one_closing_line(tlf_studies, tmp_path, capsys):
    out = tmp_path / "tlf"
    code, stdout, stderr = _run(["tlf", str(tlf_studies["study_dir"]), "--warehouse", str(tlf_studies["safety"]), "--out", str(out)], capsys)
    assert code == 0, stderr
    lines = stdout.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("trialpipe tlf: FEDERSIM-7: 17 outputs written (1 without data), 6 XPT datasets and define.xml")
    assert "Table 14.3.1" in stderr and "ADSL" in stderr  # progress lines
    for name in ("index.html", "define.xml", "adsl.xpt", "adtte.xpt", "t14_2_2.rtf", "f14_2_3.rtf", "f14_2_3.html"):
        assert (out / name).stat().st_size > 0, name


def test_tlf_without_a_warehouse_or_study_says_what_to_do(tlf_studies, tmp_path, capsys):
    code, stdout, stderr = _run(["tlf", str(tlf_studies["study_dir"]), "--warehouse", str(tmp_path / "none.duckdb"), "--out", str(tmp_path / "o")], capsys)
    assert code == 2 and "Traceback" not in stderr
    assert "does not exist" in stderr and "trialpipe run" in stderr
    import duckdb

    empty = tmp_path / "empty.duckdb"
    duckdb.connect(str(empty)).close()
    code, _, stderr = _run(["tlf", str(tlf_studies["study_dir"]), "--warehouse", str(empty), "--out", str(tmp_path / "o")], capsys)
    assert code == 2 and "has no subjects in warehouse" in stderr


def test_tlf_is_listed_in_help():
    result = CliRunner().invoke(__import__("pipelines.cli", fromlist=["cli"]).cli, ["tlf", "--help"])
    assert result.exit_code == 0 and "--out" in result.output
