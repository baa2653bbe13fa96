"""The VBA wrappers the master workbook carries for the desktop PLAN_* functions match the
Python functions: one ``Function`` per UDF, same parameter names, optional where Python has a
default, each calling ``plan_tracker.udfs.functions`` through xlwings' ``CallUDF``.

The wrappers come from xlwings' own generator via ``plan_tracker.workbook.udf_wrapper_source``
(the text "Import Functions" would write).
"""

from __future__ import annotations

import inspect
import re

import pytest
from plan_tracker.udfs import functions

workbook = pytest.importorskip("plan_tracker.workbook")

MODULE = "plan_tracker.udfs.functions"
SIGNATURE = re.compile(r"^Function (\w+)\((.*)\)\s*$", re.MULTILINE)


@pytest.fixture(scope="module")
def source() -> str:
    return workbook.udf_wrapper_source([MODULE])


def _python_udfs() -> dict[str, inspect.Signature]:
    return {name: inspect.signature(getattr(functions, name)) for name in functions.__all__}


def test_one_vba_function_per_udf(source):
    names = [m.group(1) for m in SIGNATURE.finditer(source)]
    assert sorted(names) == sorted(_python_udfs())
    assert len(names) == len(set(names)) == 8


def test_parameters_and_optionals_match_python(source):
    declared = {m.group(1): m.group(2) for m in SIGNATURE.finditer(source)}
    for name, signature in _python_udfs().items():
        want = [
            ("Optional " if p.default is not inspect.Parameter.empty else "") + p.name
            for p in signature.parameters.values()
        ]
        assert [part.strip() for part in declared[name].split(",")] == want, name


def test_each_wrapper_calls_its_python_function(source):
    for name, signature in _python_udfs().items():
        args = ", ".join(signature.parameters)
        call = f'{name} = XLPy.CallUDF("{MODULE}", "{name}", Array({args}), ThisWorkbook, Application.Caller)'
        assert call in source, name


def test_generation_leaves_the_functions_usable(source, tmp_path, monkeypatch):
    from plan_tracker import service

    project = service.init(tmp_path / "p")
    monkeypatch.setenv("PLAN_TRACKER_HOME", str(project.root))
    from plan_tracker.udfs import functions as again

    assert again.PLAN_TARGET("C1_OUTPUT", "2025") == 500.0
    assert again.PLAN_STATUS("C1_OUTPUT", "2025") == "未报送"


def test_the_workbook_config_names_the_udf_module():
    rows = dict(workbook.config_rows())
    assert rows["UDF Modules"] == MODULE
