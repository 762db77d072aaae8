"""
The evaluation operator's internals, in the order ``TogetherEvaluationOperator.execute`` uses them.

- ``operator``  the operator itself (re-exported by ``operators``; cheap to import)
- ``prepare``   arguments -> config -> input file check (columns) -> upload -> submit once
- ``columns``   the input file's columns (JSONL keys, CSV header), for the column rule
- ``gate``      thresholds: checked against the type up front, decided on the figures at the end
- ``payload``   the trigger event of an evaluation, and the worker's wait (``deferrable=False``)
- ``complete``  ``execute_complete``: Together's error, or the figures and the gate's verdict

Keep this ``__init__`` empty of imports: ``operators`` is imported at every DAG parse.
"""
