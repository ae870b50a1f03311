"""A local Hugging Face Hub mirror for tests: git repositories laid out as the real Hub ones, served by olah.

`layouts.py` converts release files (or fixtures) into the rows and file paths of the real Hub datasets,
`repos.py` writes them (and the model repositories) as git repositories, `server.py` starts olah on 127.0.0.1
with a front that resolves revisions written with slashes (`refs%2Fconvert%2Fparquet`) to their commit.
The pytest fixture `hub_mirror` (tests/conftest.py) starts one mirror per test session.
"""
