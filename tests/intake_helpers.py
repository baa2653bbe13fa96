"""Making filled submissions the way departments do: openpyxl (Excel-like), LibreOffice
headless (convert, and typing into cells through UNO), and damaged/hostile variants."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import uuid
from collections.abc import Callable, Mapping
from pathlib import Path

import openpyxl
import pytest
from plan_tracker import service
from plan_tracker.project import Project
from plan_tracker.templates import (
    COLUMN_KEYS,
    COLUMNS,
    HEADER_ROW,
    SHEET_FORM,
    fill_template,
    form_row,
)

SOFFICE = shutil.which("soffice") or shutil.which("libreoffice")
needs_soffice = pytest.mark.skipif(SOFFICE is None, reason="LibreOffice (soffice) is not installed")


def uno_python() -> str | None:
    for candidate in ("/usr/bin/python3", sys.executable):
        try:
            done = subprocess.run([candidate, "-c", "import uno"], capture_output=True, timeout=30)
        except (OSError, subprocess.TimeoutExpired):
            continue
        if done.returncode == 0:
            return candidate
    return None


def make_project(root: Path) -> Project:
    return service.init(root, actor="test")


def column_letter(key: str) -> str:
    return "ABCDEFGHI"[COLUMN_KEYS.index(key)]


row_of = form_row


def template_ids(path: Path) -> list[str]:
    ws = openpyxl.load_workbook(path)[SHEET_FORM]
    return [ws.cell(r, 1).value for r in range(HEADER_ROW + 1, ws.max_row + 1) if ws.cell(r, 1).value]


def template_meta(path: Path) -> dict:
    ws = openpyxl.load_workbook(path)["_meta"]
    for row in ws.iter_rows(values_only=True):
        if row[0] == "payload":
            return json.loads(row[1])
    raise KeyError("payload")


def fill_openpyxl(
    template: Path,
    out: Path,
    values: Mapping[str, object],
    notes: Mapping[str, object] | None = None,
    header: Mapping[str, object] | None = None,
    edit: Callable[[openpyxl.Workbook], None] | None = None,
) -> Path:
    """Fill a template as a person in Excel would, with a default contact in the header."""
    defaults = {"填报人": "张三", "联系电话": "0532-86990000", "填报日期": "2025-10-08"}
    return fill_template(template, out, values, notes, {**defaults, **(header or {})}, edit)


def lo_convert(src: Path, outdir: Path) -> Path:
    """Open and save a file with LibreOffice headless (a program other than ours)."""
    assert SOFFICE is not None
    outdir.mkdir(parents=True, exist_ok=True)
    profile = f"file:///tmp/plan-tracker-lo-{uuid.uuid4().hex}"
    done = subprocess.run(
        [SOFFICE, f"-env:UserInstallation={profile}", "--headless", "--norestore",
         "--convert-to", "xlsx:Calc MS Excel 2007 XML", "--outdir", str(outdir), str(src)],
        capture_output=True, text=True, timeout=180,
    )
    shutil.rmtree(profile[len("file://"):], ignore_errors=True)
    out = outdir / (src.stem + ".xlsx")
    assert done.returncode == 0 and out.exists(), done.stderr + done.stdout
    return out


_UNO_SCRIPT = r'''
import json, subprocess, sys, time, uno, os
from com.sun.star.beans import PropertyValue
soffice, profile, pipe, jobs = sys.argv[1], sys.argv[2], sys.argv[3], json.loads(sys.argv[4])
proc = subprocess.Popen([soffice, "-env:UserInstallation=" + profile, "--headless", "--norestore",
                         "--invisible", "--nologo", f"--accept=pipe,name={pipe};urp;"],
                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
def prop(name, value):
    p = PropertyValue(); p.Name = name; p.Value = value; return p
try:
    local = uno.getComponentContext()
    resolver = local.ServiceManager.createInstanceWithContext("com.sun.star.bridge.UnoUrlResolver", local)
    for _ in range(240):
        try:
            ctx = resolver.resolve(f"uno:pipe,name={pipe};urp;StarOffice.ComponentContext"); break
        except Exception:
            time.sleep(0.25)
    else:
        raise SystemExit("LibreOffice did not start")
    desktop = ctx.ServiceManager.createInstanceWithContext("com.sun.star.frame.Desktop", ctx)
    for job in jobs:
        doc = desktop.loadComponentFromURL(uno.systemPathToFileUrl(job["src"]), "_blank", 0, (prop("Hidden", True),))
        sheets = doc.getSheets()
        for sheet_name, a1, text in job["cells"]:
            sheet = sheets.getByName(sheet_name)
            if job.get("unprotect"):
                sheet.unprotect("")
            # setFormula is what typing does: "820" becomes a number, "待核实" text, "=1+1" a formula.
            sheet.getCellRangeByName(a1).setFormula(text)
        doc.storeToURL(uno.systemPathToFileUrl(job["out"]), (prop("FilterName", "Calc MS Excel 2007 XML"),))
        doc.close(True)
    try:
        desktop.terminate()
    except Exception:
        pass
finally:
    try:
        proc.wait(timeout=30)
    except Exception:
        proc.kill()
'''


def lo_type(jobs: list[dict]) -> None:
    """Type into cells with LibreOffice through UNO and save as xlsx.

    ``jobs``: ``{"src": path, "out": path, "cells": [(sheet, "H7", "820"), …], "unprotect": bool}``.
    One LibreOffice start serves all jobs (it costs seconds).
    """
    python = uno_python()
    if python is None or SOFFICE is None:
        pytest.skip("LibreOffice Python-UNO bridge (python3-uno) is not installed")
    script = Path(f"/tmp/plan-tracker-uno-{uuid.uuid4().hex}.py")
    script.write_text(_UNO_SCRIPT, encoding="utf-8")
    profile = f"file:///tmp/plan-tracker-lo-{uuid.uuid4().hex}"
    payload = [{**j, "src": str(j["src"]), "out": str(j["out"])} for j in jobs]
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    try:
        done = subprocess.run(
            [python, str(script), SOFFICE, profile, f"pt{uuid.uuid4().hex[:8]}", json.dumps(payload)],
            capture_output=True, text=True, timeout=300, env=env,
        )
    finally:
        script.unlink(missing_ok=True)
        shutil.rmtree(profile[len("file://"):], ignore_errors=True)
    assert done.returncode == 0, done.stderr + done.stdout
    for job in jobs:
        assert Path(job["out"]).exists(), done.stderr


def header_label(key: str) -> str:
    return COLUMNS[key][0]
