"""
The fine-tune operator's internals, in the order ``TogetherFineTuneOperator.execute`` uses them.

- ``config``         the deferrable default (cheap: imported by ``operators`` at module top)
- ``prepare``        validate -> files -> limits -> reattach -> price -> submit
- ``secrets``        W&B / Hugging Face keys from Airflow connections; inline secrets refused
- ``inputs``         a file id, a local path or an ObjectStoragePath -> checked, uploaded once, processed
- ``reattach``       the task-state-store record, the job-list search and submit-once
- ``abandoned``      a job left by a cleared or marked deferral: cancel it before submitting a new one
- ``sync_wait``      polling in the worker when ``deferrable=False``
- ``progress``       the event cursor and the progress line shared by the sync wait and the trigger
- ``payload``        the trigger event's typed payload and ``validate_event``
- ``completion``     ``execute_complete``: success summary, failures with Together's own messages
- ``job_operators``  the upload, cancel and download-checkpoint operators (re-exported by ``operators``)

Keep this ``__init__`` empty of imports: ``operators`` is imported at every DAG parse.
"""
