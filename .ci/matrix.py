"""Print the GitHub workflow's job matrix: one job per session that
`nox` runs by default (noxfile.py's nox.options.sessions, the list .ci/run
runs) and per session of noxfile.WORKFLOW_EXTRA (what .ci/run leaves out
for time), each with the CPython that setup-python must put on PATH for it.

    python .ci/matrix.py      (nox installed; prints {"include": [...]})
"""

import json
import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent))
import noxfile  # the repository root is on sys.path now

jobs = []
for session in [*(noxfile.nox.options.sessions or []), *noxfile.WORKFLOW_EXTRA]:
    version = session.removeprefix("tests-") if session.startswith("tests-") else None
    # The tests session's CPython; every other session runs on MAIN_PYTHON.
    jobs.append({"session": session, "python": version or noxfile.MAIN_PYTHON})
print(json.dumps({"include": jobs}))
