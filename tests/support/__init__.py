"""Helpers shared by the test suites; conftest files hold only fixtures and hooks.

* :mod:`tests.support.cli`: the ``planguard`` command in-process and as a real process;
* :mod:`tests.support.gate`: ``pytest --planguard`` in a pytester run or a fresh interpreter;
* :mod:`tests.support.codes`: the ``produces_codes`` marker and its code recorder;
* :mod:`tests.support.shop` and :mod:`tests.support.tpch`: projects to gate.
"""
