"""Private modules behind the :mod:`pytest_planguard.strategies` facade; import from there.

Dependency order (each imports only modules above it): ``sqlgen`` and ``serialization``,
``cases``, ``runtime``, ``valid``, ``hostile``; ``replay`` needs only ``cases``.
"""
