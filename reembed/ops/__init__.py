"""Operating reembed: the command line, doctor, the local stack, the demo,
progress, following a run, and the flip/rollback client.
"""
