"""`scan` and `probe`: plan -> execute (in a worker process) -> verdict.
request.py holds what is asked and found, pipeline.py the steps."""
