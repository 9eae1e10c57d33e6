"""The plan gate of ``pytest --planguard`` and of ``planguard diff``.

* :mod:`.policy`: the change classes and the gate policy (fail / warn per class), with the
  one option definition and the one parser the plugin and ``planguard diff`` share;
* :mod:`.state`: per-process collection and the shared instrumented run of each manifest;
* :mod:`.items`: the test items (manifest file, invariants and policy, one per view);
* :mod:`.plan_check`: the pure decision of one view (:func:`~.plan_check.decide`) and the
  thin syrupy/reporting part around it;
* :mod:`.results`: the typed result each item publishes; :mod:`.report` and
  :mod:`.terminal` render the results;
* :mod:`.classify`, :mod:`.normalize`, :mod:`.snapshot`: the snapshot format and its diff.

Nothing is imported here: the entry module imports :mod:`.policy` at start-up only.
"""
