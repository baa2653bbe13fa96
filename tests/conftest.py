"""Shared test set-up.

xlwings reads its licence key when it is first imported and only then registers the
remote/Office.js engines that the server-runtime tests use. xlwings PRO and xlwings Server are
free for noncommercial use (a district government office is noncommercial), so the tests run
with ``XLWINGS_LICENSE_KEY=noncommercial`` set before anything imports xlwings.
"""

import os

os.environ.setdefault("XLWINGS_LICENSE_KEY", "noncommercial")
