"""Shared test set-up.

xlwings reads its licence key when it is first imported and only then registers the
remote/Office.js engines that the server-runtime tests use. xlwings PRO and xlwings Server are
free for noncommercial use (a district government office is noncommercial), so the tests run
with ``XLWINGS_LICENSE_KEY=noncommercial`` set before anything imports xlwings.
"""

import os

os.environ.setdefault("XLWINGS_LICENSE_KEY", "noncommercial")


def project_with_observations(base, csv_text: str):
    """A fresh project under ``base`` holding the observations of a long-format CSV text."""
    from plan_tracker import service

    project = service.init(base / "project")
    path = base / "obs.csv"
    path.write_text(csv_text, encoding="utf-8")
    service.import_observations(project, path)
    return project
